"""Reward: M_t scores its own responses (and M_{t-1} scores them too, for consistency).

The rewarder is pluggable (``rewarder=``).  Whatever it is, this stage also records M_t's log-prob of
every response: M_t is the DPO reference of this iteration, so the DPO step reuses them instead of
keeping a reference model in memory.
"""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate

from cream import artifacts
from cream.models.loading import load_tokenizer
from cream.rewarders.implicit import encode_samples, sequence_logps
from cream.training.distributed import is_main


def run(ctx, out: Path, t: int) -> dict:
    samples = artifacts.read_jsonl(ctx.paths.samples(t))
    rewarder = instantiate(ctx.cfg.rewarder)
    scored = rewarder.score(ctx, t, samples)
    if any("policy_logp" not in s for s in scored):
        tok = load_tokenizer(ctx.model_path(t), ctx.cfg.model.trust_remote_code)
        seqs, starts, _ = encode_samples(ctx, tok, samples)
        lp = sequence_logps(ctx, t, seqs, starts, int(ctx.cfg.rewarder.get("batch_size", 32)))
        i = 0
        for row, s in zip(samples, scored):
            s["policy_logp"] = lp[i:i + len(row["responses"])]
            i += len(row["responses"])
    if is_main():  # several ranks: each scored a shard, all hold every score; rank 0 writes
        artifacts.write_jsonl(ctx.paths.rewards(t), ({"prompt_id": row["prompt_id"], **s} for row, s in zip(samples, scored)))
    return {"n_prompts": len(samples), "rewarder": ctx.cfg.rewarder._target_}
