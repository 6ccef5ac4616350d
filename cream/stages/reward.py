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

The ``reward`` section's controls (extensions, off by default; ``cream.method.length.control_rewards``) act
here: unfinished responses lose their score (``drop_truncated``), and ``reward``/``prev_reward`` become
length-controlled (``length``), the rewarder's own scores kept as ``raw_reward``/``prev_raw_reward``.  At
t = 1 with ``first_consistency=same_scale``, M0's side is log pi_0(y|x) summed over tokens, then given the
same length control as the reward: C compares M1's ranking, the one the pairs come from, with M0's on the
same scale (``official``: log pi_0 / |y| whatever the reward's scale).

A killed stage resumes per model: each model's log-probs are saved in the stage's ``.parts/`` once computed, and
the rerun of the same stage reads them back (a rewarder's other work, such as a judge's generations, is redone).
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from cream.distributed import is_main
from cream.errors import ArtifactError
from cream.method.length import control_rewards
from cream.records import RewardRow, SampleRow, read_rows, write_rows
from cream.rewarders.base import Rewarder, RewardInputs, Scores
from cream.stages.context import INFERENCE, MODEL, PARTS, Context, journal

EVERY_RANK = True  # each rank scores its share of the responses


# the controls' defaults (``reward`` section): a key is recorded only when it differs, so run dirs made
# before the controls existed stay valid
CONTROL_DEFAULTS = {"length": "none", "length_alpha": 0.0, "length_alpha_rule": "fixed", "drop_truncated": False}


def stale_keys(ctx: Context, t: int) -> list[str]:
    controls = ctx.cfg.get("reward") or {}
    on = [f"reward.{k}" for k, v in CONTROL_DEFAULTS.items() if controls.get(k, v) != v]
    same_scale = t == 1 and controls.get("first_consistency", "official") == "same_scale"
    return [*MODEL, "rewarder", *INFERENCE["reward"], *on, *(["reward.first_consistency"] if same_scale else [])]


def base_fallback(rewarder: Rewarder, t: int) -> bool:
    """Whether M_{t-1}'s side is M0's log-likelihood, not a reward (t = 1, a rewarder M0 cannot score with)."""
    return t - 1 == 0 and not rewarder.scores_base


def reward_rows(rewarder: Rewarder, inputs: RewardInputs, t: int, same_scale: bool = False) -> list[RewardRow]:
    """M_t's and M_{t-1}'s scores of every response, and M_t's log-probs, one row per prompt.  ``same_scale``:
    at t = 1, M0's side is log pi_0 summed (``reward.first_consistency=same_scale``), not divided by |y|."""
    now = rewarder.score(inputs, t)
    if base_fallback(rewarder, t):
        prev = Scores(inputs.logps(0) if same_scale else inputs.normalized_loglik(0))
    else:
        prev = rewarder.previous_score(inputs, t - 1)
    own = {**now.columns, **{f"prev_{k}": v for k, v in prev.columns.items()}}
    reward, prev_reward = inputs.per_prompt(now.values), inputs.per_prompt(prev.values)
    ref_logp, n_tokens = inputs.per_prompt(inputs.logps(t)), inputs.per_prompt(inputs.n_tokens)
    return [RewardRow(s.prompt_id, reward[i], prev_reward[i], ref_logp[i], n_tokens[i],
                      {k: v[i] for k, v in own.items()})
            for i, s in enumerate(inputs.samples)]


def controlled(rows: list[RewardRow], samples: list[SampleRow], controls,
               prev_is_reward: bool) -> tuple[list[RewardRow], dict]:
    """The rows with the ``reward`` section's controls applied (``controls``: that section, or None), and
    their summary (counts of dropped responses, the alpha used).  With a length control the rewarder's own
    scores stay in the rows as ``raw_reward`` and ``prev_raw_reward``."""
    c = controls or {}
    length, drop = c.get("length", "none"), bool(c.get("drop_truncated", False))
    if length == "none" and not drop:
        return rows, {}
    finished = [s.finished or [True] * len(s.responses) for s in samples]
    reward, prev, summary = control_rewards(
        [r.reward for r in rows], [r.prev_reward for r in rows], [r.n_tokens for r in rows], finished,
        length=length, alpha=float(c.get("length_alpha", 0.0)), alpha_rule=c.get("length_alpha_rule", "fixed"),
        drop_truncated=drop, prev_is_reward=prev_is_reward)
    out = []
    for r, a, b in zip(rows, reward, prev, strict=True):
        raw = {"raw_reward": r.reward, "prev_raw_reward": r.prev_reward} if length != "none" else {}
        out.append(replace(r, reward=a, prev_reward=b, columns={**r.columns, **raw}))
    return out, summary


def _check_finished(samples: list[SampleRow], path: Path) -> None:
    """reward.drop_truncated reads each response's ``finished`` flag: refuse, before any scoring, a samples file
    without it, rather than drop nothing."""
    for line, s in enumerate(samples, 1):
        if s.finished is None:
            raise ArtifactError(
                f"{path}, line {line} (prompt {s.prompt_id}): no `finished` flags, and reward.drop_truncated=true "
                "needs them to tell responses cut at sampling.max_new_tokens. Sample again with this version, or "
                "set reward.drop_truncated=false.")


def run(ctx: Context, out: Path, t: int) -> dict:
    samples = read_rows(ctx.paths.samples(t), SampleRow)
    controls = ctx.cfg.get("reward")
    if controls and controls.get("drop_truncated"):
        _check_finished(samples, ctx.paths.samples(t))
    rewarder = ctx.rewarder
    # each model's log-probs are saved as they are computed: a killed stage, rerun, reads them back
    # (CREAM_FAULT=<stage>:step=<n>:... fires once n models' are saved)
    inputs = RewardInputs(ctx.cfg, samples, [ctx.model_path(k) for k in range(t + 1)], rewarder.batch_size,
                          fitted=ctx.paths.rewarder if rewarder.trains else None, journal=journal(out))
    same_scale = bool(controls) and controls.first_consistency == "same_scale"
    rows = reward_rows(rewarder, inputs, t, same_scale)
    rows, summary = controlled(rows, samples, controls, prev_is_reward=same_scale or not base_fallback(rewarder, t))
    if is_main():  # several ranks: each scored a shard, all hold every score; rank 0 writes
        write_rows(ctx.paths.rewards(t), rows)
        shutil.rmtree(out / PARTS, ignore_errors=True)
    return {"n_prompts": len(samples), "rewarder": ctx.cfg.rewarder._target_, **summary}
