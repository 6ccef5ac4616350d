"""Consistency: how far M_t's ranking of each prompt's responses agrees with M_{t-1}'s.

Per prompt j, C_j = measure(r_t, r_{t-1}) in [0, 1] (Kendall's tau-b by default: C_j = (tau_j + 1) / 2,
on the raw rewards, tie-aware).  Each row also records the measure's own statistic when C is one mapped
to [0, 1] (``tau`` for Kendall, ``rho`` for Spearman); top-order agreement records only C.  The dataset-level C is the
mean of the defined C_j.  A prompt whose reward vector is constant (or has a response without a reward) has no defined
C_j: it is recorded with ``"defined": false``, left out of the mean, and ``cream_dyn`` gives its pair the dataset mean.
"""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate

from cream import artifacts
from cream.method.ranking import STATISTICS, dataset_consistency
from cream.records import ConsistencyRow, RewardRow, read_rows, write_rows
from cream.stages.context import Context

EVERY_RANK = False


def stale_keys(ctx: Context, **_) -> list[str]:
    return ["consistency"]


def run(ctx: Context, out: Path, t: int) -> dict:
    rows = read_rows(ctx.paths.rewards(t), RewardRow)
    measure = instantiate(ctx.cfg.consistency)
    name = getattr(measure, "func", measure).__name__
    vectors = [r.scored() for r in rows]  # the rewards of both models on the responses both could score
    per_prompt, summary = dataset_consistency(measure, [v[0] for v in vectors], [v[1] for v in vectors])
    stat = STATISTICS.get(name)
    write_rows(ctx.paths.consistency(t), (ConsistencyRow.of(r.prompt_id, c, stat) for r, c in zip(rows, per_prompt)))
    summary["measure"] = name
    artifacts.write_json(ctx.paths.consistency_summary(t), summary)
    return summary
