"""The dtype a stage runs inference in (``inference.*_dtype``): cast the loaded model, or keep it and say why.

bfloat16 halves the bytes every matmul reads and, on a CPU with bf16 dot-product instructions
(x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``), runs its matmuls at two to three times float32's speed.
Without them PyTorch emulates bf16 and is slower than float32, so the cast is skipped and the log says so.
On a GPU the cast happens when the GPU supports the dtype (``torch.cuda.is_bf16_supported``).
Weights are cast once, after loading; logits are taken in float32 by every caller.
"""
from __future__ import annotations

import logging
from functools import lru_cache

import torch

from cream.errors import ConfigError
from cream.models.loading import DTYPES

log = logging.getLogger(__name__)
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # /proc/cpuinfo flags (x86) and features (Arm)


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Does this CPU compute bf16 natively (a flag in ``CPU_BF16_FLAGS`` in /proc/cpuinfo)?  False where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            words = set(f.read().split())
    except OSError:
        return False
    return any(flag in words for flag in CPU_BF16_FLAGS)


def supports(dtype: torch.dtype, device: torch.device) -> bool:
    """Can ``device`` run ``dtype`` at speed (float32 always)?"""
    if dtype == torch.float32:
        return True
    if device.type == "cuda":
        return dtype == torch.float16 or torch.cuda.is_bf16_supported()
    return dtype == torch.bfloat16 and cpu_has_bf16()  # float16 on CPU: emulated, slower than float32


def resolve(wanted: str | None, key: str) -> torch.dtype | None:
    """The torch dtype named by config key ``key`` (null or auto: None, the model's own dtype)."""
    if wanted is None or wanted == "auto":
        return None
    if wanted not in DTYPES:
        raise ConfigError(f"{key}={wanted!r}: expected null (auto), float32, bfloat16 or float16")
    return DTYPES[wanted]


def for_inference(model, wanted: str | None, key: str):
    """``model`` in the dtype ``key`` asks for, where its device runs that dtype at speed; logs what was done."""
    dtype = resolve(wanted, key)
    if dtype is None:
        return model
    have = next(model.parameters()).dtype
    if dtype == have:
        return model
    device = next(model.parameters()).device
    if not supports(dtype, device):
        log.warning("%s=%s: %s has no native %s; running in %s", key, wanted,
                    "this CPU" if device.type == "cpu" else f"the {device.type} device", wanted,
                    str(have).replace("torch.", ""))
        return model
    log.info("%s=%s: inference in %s on %s (weights loaded as %s)", key, wanted, wanted, device.type,
             str(have).replace("torch.", ""))
    return model.to(dtype)
