"""Consistency: how far M_t's ranking of each prompt's responses agrees with M_{t-1}'s.

Per prompt j, C_j = measure(r_t, r_{t-1}) in [0, 1] (Kendall's tau-b by default: C_j = (tau_j + 1) / 2,
on the raw rewards, tie-aware).  The dataset-level C is the mean of the defined C_j.  A prompt whose
reward vector is constant (or has a response without a reward) has no defined C_j: it is recorded with
``"defined": false``, left out of the mean, and ``cream_dyn`` gives its pair the dataset mean.
"""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate

from cream import artifacts
from cream.method.ranking import dataset_consistency


def scored_pairs(row: dict) -> tuple[list[float], list[float]]:
    """The rewards of both models on the responses both could score."""
    keep = [i for i, (a, b) in enumerate(zip(row["reward"], row["prev_reward"])) if a is not None and b is not None]
    return [row["reward"][i] for i in keep], [row["prev_reward"][i] for i in keep]


def run(ctx, out: Path, t: int) -> dict:
    rows = artifacts.read_jsonl(ctx.paths.rewards(t))
    measure = instantiate(ctx.cfg.consistency)
    vectors = [scored_pairs(r) for r in rows]
    per_prompt, summary = dataset_consistency(measure, [v[0] for v in vectors], [v[1] for v in vectors])
    artifacts.write_jsonl(ctx.paths.consistency(t), (
        {"prompt_id": r["prompt_id"], "c": c, "tau": None if c is None else 2 * c - 1, "defined": c is not None}
        for r, c in zip(rows, per_prompt)))
    summary["measure"] = getattr(measure, "func", measure).__name__
    artifacts.write_json(ctx.paths.consistency_summary(t), summary)
    return summary
