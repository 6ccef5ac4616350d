"""Rewarders: how M_t (and M_{t-1}) score the sampled responses.  Chosen with ``rewarder=``.

A rewarder is any object with

    score(ctx, t, samples) -> list[dict]

taking the rows of ``samples.jsonl`` and returning one dict per prompt with ``reward`` (M_t's score of
each response) and ``prev_reward`` (M_{t-1}'s), both lists of N floats (``None`` for a response it
could not score), plus optional extras that land in ``rewards.jsonl``.  If it also returns
``policy_logp`` (log pi_t of each response), the DPO step reuses it as the reference; otherwise the
reward stage computes it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Rewarder(Protocol):
    def score(self, ctx, t: int, samples: list[dict]) -> list[dict]: ...


def per_prompt(samples: list[dict], **columns: Sequence) -> list[dict]:
    """Split flat per-response lists (all responses of all prompts, in order) into one dict per prompt."""
    rows, i = [], 0
    for row in samples:
        n = len(row["responses"])
        rows.append({key: list(values[i:i + n]) for key, values in columns.items()})
        i += n
    return rows
