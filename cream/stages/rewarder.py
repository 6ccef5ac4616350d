"""Rewarder: train what the rewarder needs once, from M1, before iteration 1 (only for a rewarder that
``trains``: the quick Bradley-Terry reward model of ``rewarder=reward_model`` with ``path: null``).

Its folder is the rewarder's own; every iteration's reward stage hands it to the rewarder (``inputs.fitted``).
"""
from __future__ import annotations

from pathlib import Path

from cream.stages.context import DATA, MODEL, TRAIN, Context

EVERY_RANK = False  # one process trains the reward model while the others wait


def stale_keys(ctx: Context, **_) -> list[str]:
    return [*MODEL, *DATA, *TRAIN, "rewarder"]


def run(ctx: Context, out: Path) -> dict:
    return ctx.rewarder.fit(ctx.cfg, ctx.model_path(1), out) or {}
