"""Consistency between two models' rankings of the same N responses (config group ``consistency``).

A measure takes the current model's and the previous model's reward vectors and returns C in [0, 1],
or ``None`` when it is undefined (a constant vector ranks nothing).  Rewards are used raw, ties and all
(the official CREAM code breaks ties by position, which biases tau).  A prompt's duplicated responses tie
exactly: ``cream.models.scoring.score_sequences`` scores identical sequences once.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

Measure = Callable[[Sequence[float], Sequence[float]], "float | None"]
UNDEFINED_RULE = ("prompts whose reward vector is constant (either model) have no defined C_j: they are excluded "
                  "from the mean, std, min and max; cream_dyn gives their pairs the dataset mean")


def _undefined(current: Sequence[float], previous: Sequence[float]) -> bool:
    """True when either vector is constant (or has fewer than 2 responses): no ranking to compare."""
    if len(current) != len(previous):
        raise ValueError(f"the two reward vectors must score the same responses: {len(current)} vs {len(previous)}")
    return any(len(v) < 2 or min(v) == max(v) for v in (current, previous))


def kendall(current: Sequence[float], previous: Sequence[float]) -> float | None:
    """C = (tau_b + 1) / 2, Kendall's tau-b (tie-aware) between the two reward vectors."""
    if _undefined(current, previous):
        return None
    tau = stats.kendalltau(current, previous, variant="b").statistic
    return None if math.isnan(tau) else (float(tau) + 1) / 2


def spearman(current: Sequence[float], previous: Sequence[float]) -> float | None:
    """C = (rho + 1) / 2, Spearman's rho on average ranks (ties share their mean rank)."""
    if _undefined(current, previous):
        return None
    rho = stats.spearmanr(current, previous).statistic
    return None if math.isnan(rho) else (float(rho) + 1) / 2


def toporder(current: Sequence[float], previous: Sequence[float]) -> float | None:
    """1 when both models agree on the best and on the worst response, else 0.

    Computed on argmax/argmin of the values (the official code compares the ranks of the first and last
    listed responses instead).  With ties, the models agree on the best when their sets of tied-best
    responses intersect, and likewise for the worst.
    """
    if _undefined(current, previous):
        return None

    def ties(v: Sequence[float], x: float) -> set[int]:
        return {i for i, y in enumerate(v) if y == x}

    best = ties(current, max(current)) & ties(previous, max(previous))
    worst = ties(current, min(current)) & ties(previous, min(previous))
    return 1.0 if best and worst else 0.0


# The statistic S of each measure whose C = (S + 1) / 2, recorded per prompt next to C (top-order has none).
STATISTICS: dict[str, str] = {"kendall": "tau", "spearman": "rho"}


def dataset_consistency(measure: Measure, current: Sequence[Sequence[float]],
                        previous: Sequence[Sequence[float]]) -> tuple[list[float | None], dict]:
    """Per-prompt C_j = measure(current[j], previous[j]) and the dataset summary.

    The summary's mean, std (population std, numpy ddof=0), min and max are over the defined C_j only
    (``None`` when there is none); ``n`` counts the defined prompts, ``n_undefined`` the others, and
    ``undefined`` says how they were handled.  Raises ValueError, naming the prompt, for vectors of
    different lengths or a NaN / infinite / missing reward.
    """
    if len(current) != len(previous):
        raise ValueError(f"{len(current)} current reward vectors but {len(previous)} previous ones")
    per_prompt = []
    for j, (a, b) in enumerate(zip(current, previous)):
        if len(a) != len(b):
            raise ValueError(f"prompt {j}: {len(a)} current rewards but {len(b)} previous ones")
        try:
            finite = all(math.isfinite(x) for x in [*a, *b])
        except TypeError:
            raise ValueError(f"prompt {j}: every reward must be a number (drop unscored responses first): "
                             f"{list(a)} / {list(b)}") from None
        if not finite:
            raise ValueError(f"prompt {j}: a reward is NaN or infinite: {list(a)} / {list(b)}")
        per_prompt.append(measure(a, b))
    defined = np.array([c for c in per_prompt if c is not None], dtype=float)
    summary = {
        "mean": float(defined.mean()) if defined.size else None,
        "std": float(defined.std()) if defined.size else None,
        "min": float(defined.min()) if defined.size else None,
        "max": float(defined.max()) if defined.size else None,
        "n": int(defined.size),
        "n_undefined": len(per_prompt) - int(defined.size),
        "undefined": UNDEFINED_RULE,
    }
    return per_prompt, summary
