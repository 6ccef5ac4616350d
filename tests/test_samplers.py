"""sampler= backends: hf is cream.sampling.hf.generate; vllm is optional and fails clearly when missing."""
from __future__ import annotations

import sys

import pytest
from omegaconf import OmegaConf

from conftest import compose


def test_hf_sampler_is_generate():
    from cream.sampling.hf import generate
    from cream.sampling.vllm import get_sampler

    assert get_sampler(OmegaConf.create({"name": "hf"})) is generate


def test_vllm_missing_is_a_clear_error(monkeypatch):
    from cream.errors import SamplerError
    from cream.sampling.vllm import get_sampler

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    cfg = compose(["sampler=vllm"])
    assert cfg.sampler.name == "vllm"
    with pytest.raises(SamplerError, match="pip install vllm"):
        get_sampler(cfg.sampler)


def test_unknown_sampler():
    from cream.errors import SamplerError
    from cream.sampling.vllm import get_sampler

    with pytest.raises(SamplerError, match="sampler.name='nope'"):
        get_sampler(OmegaConf.create({"name": "nope"}))


def test_vllm_gets_every_stop_id_and_reports_cut_completions(monkeypatch, tiny_dir):
    """With a stand-in vllm module: SamplingParams receives the stop ids of cream.models.tokens.stop_ids, and a
    completion vLLM ended for length is flagged as not finished."""
    import types

    from cream.models.loading import load_model, load_tokenizer
    from cream.models.tokens import stop_ids
    from cream.sampling.vllm import get_sampler

    seen = {}

    class SamplingParams:
        def __init__(self, **kw):
            seen["params"] = kw

    class LLM:
        def __init__(self, **kw):
            seen["llm"] = kw

        def generate(self, prompts, params, use_tqdm=False):
            out = lambda text, reason: types.SimpleNamespace(text=text, finish_reason=reason)  # noqa: E731
            return [types.SimpleNamespace(outputs=[out("a", "stop"), out("b", "length")]) for _ in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    tok, model = load_tokenizer(tiny_dir), load_model(tiny_dir)
    generate = get_sampler(compose(["sampler=vllm"]).sampler)
    texts, finished, n_trunc = generate(model, tok, ["Which gas?"], n=2, max_new_tokens=8, temperature=0.7, top_p=0.9,
                                        return_finished=True)
    assert seen["params"]["stop_token_ids"] == stop_ids(tok, model) == [tok.eos_token_id]
    assert texts == [["a", "b"]] and finished == [[True, False]] and n_trunc == 0
    assert seen["llm"]["model"] == str(tiny_dir)
