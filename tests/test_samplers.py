"""sampler= backends: hf is cream.generation.generate; vllm is optional and fails clearly when missing."""
from __future__ import annotations

import sys

import pytest
from omegaconf import OmegaConf

from conftest import compose


def test_hf_sampler_is_generate():
    from cream.generation import generate
    from cream.samplers import get_sampler

    assert get_sampler(OmegaConf.create({"name": "hf"})) is generate


def test_vllm_missing_is_a_clear_error(monkeypatch):
    from cream.samplers import SamplerError, get_sampler

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    cfg = compose(["sampler=vllm"])
    assert cfg.sampler.name == "vllm"
    with pytest.raises(SamplerError, match="pip install vllm"):
        get_sampler(cfg.sampler)


def test_unknown_sampler():
    from cream.samplers import SamplerError, get_sampler

    with pytest.raises(SamplerError, match="sampler.name='nope'"):
        get_sampler(OmegaConf.create({"name": "nope"}))
