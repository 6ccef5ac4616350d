"""Reward: M_t scores its own responses, and M_{t-1} scores them too, for consistency.

The rewarder is pluggable (``rewarder=``, ``cream/rewarders/base.py``); this stage owns what is common to all:

- the responses encoded once and the models loaded on demand (``RewardInputs``);
- at t = 1, when M_{t-1} = M0 cannot rank with the rewarder (``scores_base = False``: no reference for an
  implicit reward, no head), M0's length-normalized log-likelihood log pi_0(y|x) / |y| instead;
- M_t's log-prob of every response (``ref_logp``): M_t is the DPO reference of this iteration, so the DPO
  step reuses them instead of keeping a reference model in memory.

``rewards.jsonl``: per prompt ``reward`` and ``prev_reward`` (one float or None per response), the rewarder's
own columns (the previous model's prefixed ``prev_``), ``ref_logp`` and ``n_tokens`` (``cream.records.RewardRow``;
older run dirs wrote ``ref_logp`` as ``policy_logp``, read as well).
"""
from __future__ import annotations

from pathlib import Path

from cream.distributed import is_main
from cream.records import RewardRow, SampleRow, read_rows, write_rows
from cream.rewarders.base import Rewarder, RewardInputs, Scores
from cream.stages.context import MODEL, Context

EVERY_RANK = True  # each rank scores its share of the responses


def stale_keys(ctx: Context) -> list[str]:
    return [*MODEL, "rewarder"]


def reward_rows(rewarder: Rewarder, inputs: RewardInputs, t: int) -> list[RewardRow]:
    """M_t's and M_{t-1}'s scores of every response, and M_t's log-probs, one row per prompt."""
    now = rewarder.score(inputs, t)
    if t - 1 == 0 and not rewarder.scores_base:
        prev = Scores(inputs.normalized_loglik(0))
    else:
        prev = rewarder.previous_score(inputs, t - 1)
    own = {**now.columns, **{f"prev_{k}": v for k, v in prev.columns.items()}}
    reward, prev_reward = inputs.per_prompt(now.values), inputs.per_prompt(prev.values)
    ref_logp, n_tokens = inputs.per_prompt(inputs.logps(t)), inputs.per_prompt(inputs.n_tokens)
    return [RewardRow(s.prompt_id, reward[i], prev_reward[i], ref_logp[i], n_tokens[i], {k: v[i] for k, v in own.items()})
            for i, s in enumerate(inputs.samples)]


def run(ctx: Context, out: Path, t: int) -> dict:
    samples = read_rows(ctx.paths.samples(t), SampleRow)
    rewarder = ctx.rewarder
    inputs = RewardInputs(ctx.cfg, samples, [ctx.model_path(k) for k in range(t + 1)], rewarder.batch_size,
                          fitted=ctx.paths.rewarder if rewarder.trains else None)
    rows = reward_rows(rewarder, inputs, t)
    if is_main():  # several ranks: each scored a shard, all hold every score; rank 0 writes
        write_rows(ctx.paths.rewards(t), rows)
    return {"n_prompts": len(samples), "rewarder": ctx.cfg.rewarder._target_}
