"""The self-reward head: trained in SFT to tell gold responses from the model's own argmax predictions."""
from __future__ import annotations

from pathlib import Path

import torch

from conftest import compose


def auc(pos: list[float], neg: list[float]) -> float:
    """P(score of a positive > score of a negative), ties count 1/2 (the Mann-Whitney U / (n_pos n_neg))."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_helper():
    assert auc([3, 4], [1, 2]) == 1.0 and auc([1], [2]) == 0.0 and auc([1, 2], [1, 2]) == 0.5


WORDS = "plants take in carbon dioxide the answer is step by step think about question natalia sold clips".split()


def _sft_batches(tok, n: int = 32, seed: int = 0):
    """A toy SFT set: varied word-salad targets, which a tiny LM cannot reproduce exactly with argmax."""
    import random

    from cream.training.datamodules import SFTDataModule

    rng = random.Random(seed)
    prompts = [f"Question {j}: which gas do plants take in?\n" for j in range(n)]
    targets = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + ". Answer: B" for _ in range(n)]
    dm = SFTDataModule(tok, prompts, targets, batch_size=16, max_length=96, max_prompt_length=48, seed=0)
    return [dm.collate(dm.items[i: i + 16]) for i in range(0, n, 16)]


def test_head_learns_gold_vs_generated(tiny_dir):
    from cream.models.loading import load_model, load_tokenizer
    from cream.training.head_module import SelfRewardHead, SFTWithHeadModule, head_features

    torch.manual_seed(0)
    tok, model = load_tokenizer(tiny_dir), load_model(tiny_dir)
    module = SFTWithHeadModule(model, SelfRewardHead(model.config.hidden_size), weight=1.0, lr=3e-3, total_steps=60)
    module.log = lambda *a, **k: None  # no Trainer attached
    opt = module.configure_optimizers()["optimizer"]
    batches = _sft_batches(tok)
    first = None
    for _ in range(15):
        for b in batches:
            loss = module.training_step(b, 0)
            first = first if first is not None else loss.item()
            opt.zero_grad()
            loss.backward()
            opt.step()
    module.eval()
    gold, gen = [], []
    with torch.no_grad():
        for b in _sft_batches(tok, 48, seed=1):  # held out
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            g, n = head_features(model, logits, b["labels"])
            gold += torch.sigmoid(module.head(g)).tolist()
            gen += torch.sigmoid(module.head(n)).tolist()
    score = auc(gold, gen)
    print("head AUC", score)
    assert score >= 0.9, score
    assert loss.item() < first


def test_features_are_summed_response_embeddings(tiny_dir):
    from cream.models.loading import load_model
    from cream.training.head_module import head_features

    model = load_model(tiny_dir)
    labels = torch.tensor([[-100, -100, 5, 6, 7, -100]])
    logits = torch.zeros(1, 6, model.config.vocab_size)
    logits[0, :, 9] = 1.0  # argmax token 9 everywhere
    gold, gen = head_features(model, logits, labels)
    E = model.get_input_embeddings().weight
    assert torch.allclose(gold[0], E[5] + E[6] + E[7], atol=1e-6)
    assert torch.allclose(gen[0], 3 * E[9], atol=1e-6)


def test_head_save_load_copy(tmp_path):
    from cream.training.head_module import SelfRewardHead, copy_head, has_head, load_head, save_head

    head = SelfRewardHead(16, 8)
    save_head(head, tmp_path / "a")
    assert has_head(tmp_path / "a") and not has_head(tmp_path / "b")
    assert copy_head(tmp_path / "a", tmp_path / "b") and not copy_head(tmp_path / "c", tmp_path / "d")
    x = torch.randn(3, 16)
    assert torch.allclose(load_head(tmp_path / "b")(x), head.eval()(x))


def test_sft_module_choice_follows_the_rewarder(tiny_dir):
    """The SFT stage asks the rewarder for its module: the head's rewarder trains one, every other says None."""
    from cream.models.loading import load_model
    from cream.pipeline import Context, plan
    from cream.rewarders.implicit import ImplicitRewarder
    from cream.rewarders.self_reward_head import SelfRewardHeadRewarder
    from cream.training.head_module import SFTWithHeadModule

    model = load_model(tiny_dir)
    assert ImplicitRewarder().sft_module(model, seed=0, lr=1e-3) is None
    head_cfg = compose(["rewarder=self_reward_head", "rewarder.head.weight=0.5"]).rewarder
    with_head = SelfRewardHeadRewarder(head=head_cfg.head).sft_module(model, seed=0, lr=1e-3)
    assert isinstance(with_head, SFTWithHeadModule) and with_head.weight == 0.5
    sft = {s.name: s for s in plan(Context(compose(["rewarder=self_reward_head"]), Path("run")))}["sft"]
    assert sft.config["rewarder"]["head"]["weight"] == 1.0
    assert "rewarder" not in {s.name: s for s in plan(Context(compose(), Path("run")))}["sft"].config


def test_rewarder_scores_are_head_probabilities(tiny_dir, tmp_path):
    import shutil

    from cream.models.loading import load_model, load_tokenizer
    from cream.models.tokens import encode_pair
    from cream.rewarders.self_reward_head import head_rewards
    from cream.training.head_module import SelfRewardHead, save_head, summed_embeddings

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    torch.manual_seed(1)
    head = SelfRewardHead(32)
    save_head(head, model_dir)
    tok, model = load_tokenizer(model_dir), load_model(model_dir)
    enc = [encode_pair(tok, "Q?\n", r, 64, 32) for r in ["Answer: B", "The answer is 72. Answer: 72"]]
    seqs, starts = [e[0] for e in enc], [e[1] for e in enc]
    got = head_rewards(model, head, seqs, starts, tok.pad_token_id)
    E = model.get_input_embeddings()
    for s, st, g in zip(seqs, starts, got):
        ids = torch.tensor([s[st:]])
        want = torch.sigmoid(head(summed_embeddings(E, ids, torch.ones_like(ids)))).item()
        assert abs(g - want) < 1e-5 and 0 < g < 1
