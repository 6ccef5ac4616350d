"""AdamW with linear warmup then cosine decay, shared by every training module.

Weight decay as HF Trainer applies it: every trainable parameter decays except biases and the weights
of normalization layers (LayerNorm, RMSNorm, ...: any module whose class name contains "Norm", or a
parameter whose dotted name has a ``norm`` / ``layernorm`` / ``rmsnorm`` / ``*_norm`` component).
Decaying a norm's gain pulls it toward 0, not toward the identity 1, and a bias has no scale to regularize.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable

import torch
from torch import nn

_NORM_NAME = re.compile(r"(?:^|\.|_)(?:layer|rms)?norm(?:$|\.)")


def no_decay(module_name: str, module: nn.Module, param_name: str) -> bool:
    """True for a bias or a parameter of a normalization layer (``module`` owns it directly)."""
    full = f"{module_name}.{param_name}" if module_name else param_name
    return (param_name == "bias" or "norm" in type(module).__name__.lower()
            or isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or bool(_NORM_NAME.search(full.lower())))


def param_groups(modules: nn.Module | Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """The trainable parameters of ``modules`` as two AdamW groups: decayed, and not (biases, norms).
    A parameter shared by several modules (tied embeddings) is listed once."""
    modules = [modules] if isinstance(modules, nn.Module) else list(modules)
    decay, plain, seen = [], [], set()
    for root in modules:
        for mname, module in root.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                if not p.requires_grad or id(p) in seen:
                    continue
                seen.add(id(p))
                (plain if no_decay(mname, module, pname) else decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": plain, "weight_decay": 0.0}]


def adamw_cosine(modules: nn.Module | Iterable[nn.Module], lr: float, weight_decay: float, warmup_ratio: float,
                 total_steps: int):
    """AdamW over ``param_groups(modules)``.  ``total_steps`` is passed in (not read from the trainer, which
    would build the train loader before a checkpoint is restored and so break mid-epoch resume)."""
    opt = torch.optim.AdamW(param_groups(modules, weight_decay), lr=lr, weight_decay=weight_decay)
    total = max(1, int(total_steps))
    warmup = int(warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
