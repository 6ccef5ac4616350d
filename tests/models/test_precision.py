"""inference.*_dtype (cream.models.precision): cast where the device computes the dtype natively, keep the
weights and say so where it does not, refuse unknown names."""
from __future__ import annotations

import logging

import pytest
import torch

from cream.errors import ConfigError
from cream.models import precision


def _model():
    return torch.nn.Linear(4, 4)


def test_bf16_on_a_cpu_with_bf16_casts(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with caplog.at_level(logging.INFO, logger="cream.models.precision"):
        m = precision.for_inference(_model(), "bfloat16", "inference.eval_dtype")
    assert m.weight.dtype == torch.bfloat16
    assert "inference.eval_dtype=bfloat16: inference in bfloat16 on cpu" in caplog.text


def test_bf16_on_a_cpu_without_bf16_keeps_float32_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="cream.models.precision"):
        m = precision.for_inference(_model(), "bfloat16", "inference.reward_dtype")
    assert m.weight.dtype == torch.float32
    assert "inference.reward_dtype=bfloat16: this CPU has no native bfloat16; running in float32" in caplog.text


def test_float16_on_cpu_is_not_emulated(caplog):
    with caplog.at_level(logging.WARNING, logger="cream.models.precision"):
        assert precision.for_inference(_model(), "float16", "inference.sampling_dtype").weight.dtype == torch.float32
    assert "no native float16" in caplog.text


@pytest.mark.parametrize("auto", [None, "auto", "float32"])
def test_auto_and_the_loaded_dtype_change_nothing(auto):
    m = _model()
    assert precision.for_inference(m, auto, "inference.eval_dtype") is m and m.weight.dtype == torch.float32


def test_unknown_dtype_names_the_key():
    with pytest.raises(ConfigError, match=r"inference.loglik_dtype='bf16': expected null \(auto\), float32, bfloat16"):
        precision.for_inference(_model(), "bf16", "inference.loglik_dtype")


def test_cpu_flags_are_read_from_proc_cpuinfo(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for flags, want in [("fpu avx512f avx512_bf16 sse", True), ("fpu avx2 sse", False)]:
        f = tmp_path / "cpuinfo"
        f.write_text(f"flags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open",
                            lambda p, *a, f=f, **k: real_open(f if p == "/proc/cpuinfo" else p, *a, **k))
        precision.cpu_has_bf16.cache_clear()
        assert precision.cpu_has_bf16() is want
    precision.cpu_has_bf16.cache_clear()
