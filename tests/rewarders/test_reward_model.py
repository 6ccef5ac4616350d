"""Bradley-Terry reward model (``cream-train-rm``, ``rewarder=reward_model``)."""
from __future__ import annotations

import json
import random

import pytest
import torch

WORDS = "plants take in carbon dioxide the answer is step by step think about question natalia sold clips".split()


def toy_pairs(n: int, seed: int) -> list[dict]:
    """Separable preferences: every chosen response ends in "Answer: B", no rejected one does."""
    rng = random.Random(seed)
    out = []
    for j in range(n):
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        out.append({"prompt": f"Question {j}: {' '.join(rng.sample(WORDS, 4))}?\n",
                    "chosen": f"{filler}. Answer: B",
                    "rejected": f"{filler}. Answer: {rng.choice(['72', 'helium', 'neon', 'oxygen'])}"})
    return out


def test_bradley_terry_loss():
    from cream.training.rm_module import bradley_terry_loss

    c, r = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    want = -torch.nn.functional.logsigmoid(c - r).mean()
    assert torch.allclose(bradley_terry_loss(c, r), want)
    assert bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(0.6931, abs=1e-4)


def test_reward_read_at_last_real_token(tiny_dir):
    """Right padding: a sequence's reward does not depend on how much padding follows it."""
    from cream.training.rm_module import RewardModel

    rm = RewardModel.from_lm(tiny_dir).eval()
    ids = torch.tensor([[1, 20, 30, 40, 3, 3, 3], [1, 20, 30, 40, 50, 60, 70]])
    att = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    with torch.no_grad():
        r = rm(ids, att)
        alone = rm(ids[:1, :4], att[:1, :4])
    assert r.shape == (2,) and torch.allclose(r[0], alone[0], atol=1e-5)


def test_bradley_terry_separates_a_toy_preference_set(tiny_dir, tmp_path):
    from cream.models.loading import load_tokenizer
    from cream.training.rm_module import load_reward_model
    from cream.training.train_rm import score_responses, train_reward_model

    train, held_out = toy_pairs(64, 0), toy_pairs(40, 1)
    summary = train_reward_model(tiny_dir, train, tmp_path / "rm", epochs=8, lr=3e-3, batch_size=16,
                                 weight_decay=0.0, warmup_ratio=0.1, max_length=96, max_prompt_length=48, seed=0)
    assert summary["steps"] == 8 * 4 and summary["n_pairs"] == 64
    assert {"config.json", "model.safetensors", "reward_head.safetensors", "reward_model.json", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "rm").iterdir()}
    assert json.loads((tmp_path / "rm" / "reward_model.json").read_text())["format"] == "cream-bradley-terry-rm"
    log = (tmp_path / "rm" / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss" in log and "train/accuracy" in log
    # reload from disk and score held-out pairs
    rm, tok = load_reward_model(tmp_path / "rm"), load_tokenizer(tmp_path / "rm")
    kw = dict(max_length=96, max_prompt_length=48)
    chosen = score_responses(rm, tok, [p["prompt"] for p in held_out], [p["chosen"] for p in held_out], **kw)
    rejected = score_responses(rm, tok, [p["prompt"] for p in held_out], [p["rejected"] for p in held_out], **kw)
    accuracy = sum(c > r for c, r in zip(chosen, rejected)) / len(held_out)
    print("held-out pairwise accuracy", accuracy)
    assert accuracy >= 0.9, accuracy


def test_cli_trains_from_jsonl(tiny_dir, tmp_path):
    from cream import artifacts
    from cream.cli import train_rm as main

    artifacts.write_jsonl(tmp_path / "pairs.jsonl", toy_pairs(8, 2))
    assert main(["--pairs", str(tmp_path / "pairs.jsonl"), "--model", str(tiny_dir), "--out", str(tmp_path / "rm"),
                 "--epochs", "1", "--batch-size", "4", "--max-length", "96", "--max-prompt-length", "48",
                 "--accelerator", "cpu"]) == 0
    summary = json.loads((tmp_path / "rm" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and 0 <= summary["train/accuracy"] <= 1


def test_missing_fields_and_not_an_rm(tiny_dir, tmp_path):
    from cream.errors import ModelLoadError
    from cream.training.rm_module import load_reward_model
    from cream.training.train_rm import RMTraining, train_reward_model

    with pytest.raises(ValueError, match="rejected"):
        train_reward_model(tiny_dir, [{"prompt": "q", "chosen": "a"}], tmp_path / "rm", **vars(RMTraining.defaults()))
    with pytest.raises(ModelLoadError, match="cream-train-rm"):
        load_reward_model(tiny_dir)


def test_seed_pairs_for_the_quick_rm(tiny_dir):
    """rewarder=reward_model with path null: gold SFT target vs a wrong-answer response, labeled seed set only."""
    from conftest import compose
    from cream.data.pool import seed_set
    from cream.models.loading import load_tokenizer
    from cream.rewarders.reward_model import seed_pairs

    cfg = compose(["debug=smoke", "rewarder=reward_model"])
    pairs = seed_pairs(cfg, load_tokenizer(tiny_dir))
    examples = seed_set(cfg)
    assert len(pairs) == len(examples) == 32
    for p, ex in zip(pairs, examples):
        assert p["chosen"].endswith(f"Answer: {ex.answer}")
        assert p["rejected"].startswith("The answer is ") and not p["rejected"].endswith(f"Answer: {ex.answer}")
        assert ex.question in p["prompt"]
    assert seed_pairs(cfg, load_tokenizer(tiny_dir)) == pairs  # deterministic


def _hf_reward_model(tiny_dir, out, num_labels=1):
    """A standard transformers reward model folder: LlamaForSequenceClassification + tokenizer, built offline."""
    from transformers import AutoConfig, LlamaForSequenceClassification

    from cream.models.loading import load_tokenizer

    config = AutoConfig.from_pretrained(tiny_dir)
    config.num_labels = num_labels
    torch.manual_seed(1)
    model = LlamaForSequenceClassification(config)
    model.save_pretrained(out)
    load_tokenizer(tiny_dir).save_pretrained(out)
    return model.eval()


def test_transformers_sequence_classifier_reward_model(tiny_dir, tmp_path):
    """rewarder.path may be an AutoModelForSequenceClassification folder: reward = score head . h at the last
    real token (checked against the backbone's hidden state), independent of padding; scored through
    score_responses like our own format."""
    from cream.models.loading import load_tokenizer
    from cream.models.tokens import encode_pair
    from cream.training.rm_module import SequenceClassifierReward, is_sequence_classifier, load_reward_model
    from cream.training.train_rm import score_responses

    ref = _hf_reward_model(tiny_dir, tmp_path / "hf_rm")
    assert is_sequence_classifier(tmp_path / "hf_rm") and not is_sequence_classifier(tiny_dir)
    rm = load_reward_model(tmp_path / "hf_rm")
    assert isinstance(rm, SequenceClassifierReward)
    tok = load_tokenizer(tmp_path / "hf_rm")
    prompts, responses = ["Which gas do plants take in?\n"] * 2, ["carbon dioxide. Answer: B", "neon"]
    got = score_responses(rm, tok, prompts, responses, max_length=64, max_prompt_length=32, batch_size=2)
    for p, r, g in zip(prompts, responses, got):
        ids = torch.tensor([encode_pair(tok, p, r, 64, 32)[0]])
        with torch.no_grad():
            h = ref.model(input_ids=ids).last_hidden_state[0, -1]
        assert g == pytest.approx((ref.score.weight[0] @ h).item(), abs=1e-5)  # no padding, last token
    alone = score_responses(rm, tok, prompts[1:], responses[1:], max_length=64, max_prompt_length=32)
    assert alone[0] == pytest.approx(got[1], abs=1e-5)  # padded in the batch of 2, alone here


def test_sequence_classifier_with_several_labels_is_refused(tiny_dir, tmp_path):
    from cream.errors import ModelLoadError
    from cream.training.rm_module import load_reward_model

    _hf_reward_model(tiny_dir, tmp_path / "clf", num_labels=3)
    with pytest.raises(ModelLoadError, match="num_labels=3"):
        load_reward_model(tmp_path / "clf")


def test_rm_training_settings_live_in_the_rewarder_config():
    """The quick RM and cream-train-rm read their defaults from conf/rewarder/reward_model.yaml; bad keys are
    refused."""
    from conftest import compose
    from cream.errors import ConfigError
    from cream.training.train_rm import RMTraining

    block = compose(["rewarder=reward_model", "rewarder.train.epochs=1"]).rewarder.train
    assert RMTraining.of(dict(block), "rewarder.train") == RMTraining(1, 1e-4, 16, 0.0, 0.1)
    assert RMTraining.defaults() == RMTraining(3, 1e-4, 16, 0.0, 0.1)
    with pytest.raises(ConfigError,
                       match=r"rewarder.train: unknown key\(s\) \['epoch'\]; expected exactly: epochs, lr"):
        RMTraining.of({**block, "epoch": 2}, "rewarder.train")
