"""sampler= backends (a _target_ group): hf runs cream.sampling.hf.generate on the moved model; vllm is optional,
fails clearly when missing and loads the weights itself."""
from __future__ import annotations

import sys

import pytest

from conftest import compose
from cream.errors import ConfigError, SamplerError
from cream.sampling import make_sampler


def test_hf_sampler_calls_generate_on_the_moved_model(monkeypatch):
    from cream.sampling import hf

    seen = {}
    monkeypatch.setattr(hf, "generate",
                        lambda model, tok, prompts, **kw: seen.update(model=model, prompts=prompts, **kw) or "out")
    sampler = make_sampler(compose([]).sampler)  # the default, sampler=hf
    assert type(sampler) is hf.HFSampler and sampler.moves_model is True
    assert sampler("M", "T", ["p"], n=3, seed=5) == "out" and seen == {"model": "M", "prompts": ["p"],
                                                                       "n": 3, "seed": 5}


def test_vllm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    cfg = compose(["sampler=vllm"])
    assert cfg.sampler._target_ == "cream.sampling.vllm.VLLMSampler"
    with pytest.raises(SamplerError, match="pip install vllm"):  # itself, not Hydra's InstantiationException
        make_sampler(cfg.sampler)


def test_unknown_sampler_key_is_refused_before_the_run():
    from cream.config import check

    with pytest.raises(ConfigError, match=r"sampler\.gpu_memory: unknown key .*gpu_memory_utilization"):
        check(compose(["sampler=vllm", "+sampler.gpu_memory=0.5"]))


def test_vllm_gets_every_stop_id_and_reports_cut_completions(monkeypatch, tiny_dir):
    """With a stand-in vllm module: SamplingParams receives the stop ids of cream.models.tokens.stop_ids, and a
    completion vLLM ended for length is flagged as not finished."""
    import types

    from cream.models.loading import load_model, load_tokenizer
    from cream.models.tokens import stop_ids
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
    generate = make_sampler(compose(["sampler=vllm"]).sampler)
    assert generate.moves_model is False
    texts, finished, n_trunc = generate(model, tok, ["Which gas?"], n=2, max_new_tokens=8, temperature=0.7, top_p=0.9,
                                        return_finished=True)
    assert seen["params"]["stop_token_ids"] == stop_ids(tok, model) == [tok.eos_token_id]
    assert texts == [["a", "b"]] and finished == [[True, False]] and n_trunc == 0
    assert seen["llm"]["model"] == str(tiny_dir)
