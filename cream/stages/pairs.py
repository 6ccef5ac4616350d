"""Pairs: for each prompt, y+ = the response M_t rewards most, y- = the one it rewards least.

A prompt whose rewards all tie gives no pair and is dropped (counted in ``summary.json``).  Among tied
best (or worst) responses the first listed is taken.  A response without a reward (``None``: unscored, or
dropped by ``reward.drop_truncated``) is never in a pair.

``summary.json`` also holds the iteration's ``diagnostics`` (``cream.report.diagnostics``: samples, pair
lengths, good/bad pairs on verifiable prompts, the AUC of C), which ``results.jsonl`` carries.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cream import artifacts
from cream.errors import NoPairsError
from cream.paths import iteration_stage
from cream.records import ConsistencyRow, PairRow, RewardRow, SampleRow, read_rows, write_rows
from cream.report.diagnostics import diagnostics
from cream.report.reward_metrics import correctness, reward_quality
from cream.stages.context import Context

EVERY_RANK = False


def stale_keys(ctx: Context, **_) -> list[str]:
    return []  # its inputs' digests say it all


def select_pair(rewards: Sequence[float | None]) -> tuple[int, int] | None:
    """(index of the best, index of the worst) among scored responses, or None when they all tie."""
    scored = [(r, i) for i, r in enumerate(rewards) if r is not None]
    if len(scored) < 2:
        return None
    best = max(scored, key=lambda x: (x[0], -x[1]))
    worst = min(scored, key=lambda x: (x[0], x[1]))
    return None if best[0] == worst[0] else (best[1], worst[1])


def iteration_diagnostics(paths, t: int, samples: list[SampleRow], rewards: list[RewardRow], pairs: list[PairRow],
                          cons: dict) -> dict:
    """``cream.report.diagnostics.diagnostics`` of iteration t from its rows (labels.jsonl when it has one)."""
    tokens = {r.prompt_id: r.n_tokens for r in rewards}
    rows = [s.to_json() for s in samples]
    labels = artifacts.read_jsonl(paths.labels(t)) if paths.labels(t).exists() else []
    return diagnostics(rows, [tokens[s.prompt_id] for s in samples], [p.to_json() for p in pairs],
                       correctness(rows, labels), cons)


def _why_none(ctx: Context, t: int) -> str:
    """With reward.drop_truncated: how many responses it dropped (from the reward stage's summary)."""
    if not (ctx.cfg.get("reward") or {}).get("drop_truncated"):
        return ""
    manifest = ctx.paths.manifest(iteration_stage("reward", t))
    s = (artifacts.read_json(manifest).get("summary") or {}) if manifest.exists() else {}
    return (f" reward.drop_truncated=true dropped {s.get('n_truncated_dropped', '?')} responses cut at "
            f"sampling.max_new_tokens and left {s.get('n_prompts_lt2', '?')} prompts with fewer than 2: raise "
            "sampling.max_new_tokens, or set reward.drop_truncated=false.")


def run(ctx: Context, out: Path, t: int) -> dict:
    paths = ctx.paths
    samples = {r.prompt_id: r for r in read_rows(paths.samples(t), SampleRow)}
    rewards = read_rows(paths.rewards(t), RewardRow)
    cons = {r.prompt_id: r.c for r in read_rows(paths.consistency(t), ConsistencyRow)}
    pairs: list[PairRow] = []
    dropped: list[str] = []
    for row in rewards:
        pick = select_pair(row.reward)
        if pick is None:
            dropped.append(row.prompt_id)
            continue
        b, w = pick
        s = samples[row.prompt_id]
        pairs.append(PairRow(
            prompt_id=row.prompt_id, prompt=s.prompt,
            chosen=s.responses[b], rejected=s.responses[w], chosen_index=b, rejected_index=w,
            reward_chosen=row.reward[b], reward_rejected=row.reward[w],
            ref_logp_chosen=row.ref_logp[b], ref_logp_rejected=row.ref_logp[w],
            c=cons.get(row.prompt_id),
        ))
    summary = {"n_pairs": len(pairs), "n_dropped": len(dropped), "n_prompts": len(rewards), "dropped": dropped,
               "chosen_chars": sum(len(p.chosen) for p in pairs) / max(1, len(pairs)),
               "rejected_chars": sum(len(p.rejected) for p in pairs) / max(1, len(pairs))}
    # agreement with the verifiable ranking (labels.jsonl)
    quality = reward_quality(paths, t, [p.to_json() for p in pairs], dropped)
    if quality is not None:
        artifacts.write_json(paths.reward_quality(t), quality)
        summary["reward_quality"] = quality
    summary["diagnostics"] = iteration_diagnostics(paths, t, list(samples.values()), rewards, pairs, cons)
    if not pairs:
        raise NoPairsError(
            f"{paths.rewards(t)}: the rewards tie for every one of the {len(rewards)} prompts, so "
            f"iteration {t} has no preference pairs to train on. Sample more diverse responses (sampling.n, "
            "sampling.temperature) or use another rewarder; the samples and rewards already written are kept."
            + _why_none(ctx, t))
    write_rows(paths.pairs(t), pairs)
    artifacts.write_json(paths.pairs_summary(t), summary)
    return {k: v for k, v in summary.items() if k != "dropped"}
