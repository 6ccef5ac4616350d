"""AdamW with linear warmup then cosine decay, shared by every training module."""
from __future__ import annotations

import math

import torch


def adamw_cosine(params, lr: float, weight_decay: float, warmup_ratio: float, total_steps: int):
    """``total_steps`` is passed in (not read from the trainer, which would build the train loader before a
    checkpoint is restored and so break mid-epoch resume)."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total = max(1, int(total_steps))
    warmup = int(warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
