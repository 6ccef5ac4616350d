"""How the consistency weight C of each pair is chosen (config group ``regularizer``).

Each class maps the per-pair consistency C_j (``None`` where undefined) and the dataset-level C (the
mean of the defined C_j, ``None`` when no prompt had one) to one weight per pair for CREAM's loss

    L = C * l(y+, y-) + (1 - C) * l(y-, y+)        (Wang et al. 2024; C = 1 is the plain loss).

Every regularizer takes ``min_c`` (an extension, off by default): a floor on the weight, C' = max(C, min_c).
With ``min_c=0.5`` no pair is trained mostly toward its rejected response: CREAM's loss is label-smoothed DPO
with epsilon = 1 - C, and C < 0.5 means more weight on the flipped label than on the label itself.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Regularizer(Protocol):
    """Anything with ``weights(pair_consistency, dataset_consistency) -> [C per pair]``."""

    def weights(self, pair_consistency: Sequence[float | None], dataset_consistency: float | None) -> list[float]: ...


def _check(c: float, what: str) -> float:
    try:
        c = float(c)
    except (TypeError, ValueError):
        raise ValueError(f"{what}={c!r}: a consistency weight must be a number in [0, 1]") from None
    if not 0 <= c <= 1:  # also rejects NaN
        raise ValueError(f"{what}={c}: a consistency weight must lie in [0, 1]")
    return c


def _floor(min_c: float | None) -> float | None:
    return None if min_c is None else _check(min_c, "regularizer.min_c")


class _Floored:
    """The shared floor: ``weights`` = max(C, min_c) of the subclass's ``_weights`` (``min_c=None``: as they are)."""

    def __init__(self, min_c: float | None = None):
        self.min_c = _floor(min_c)

    def weights(self, pair_consistency: Sequence[float | None], dataset_consistency: float | None) -> list[float]:
        w = self._weights(pair_consistency, dataset_consistency)
        return w if self.min_c is None else [max(c, self.min_c) for c in w]


class NoRegularizer(_Floored):
    """``none``: C = 1 for every pair, plain DPO on self-rewarded pairs (the self-rewarding baseline, SRLM)."""

    def _weights(self, pair_consistency: Sequence[float | None], dataset_consistency: float | None) -> list[float]:
        return [1.0] * len(pair_consistency)


class DatasetConsistency(_Floored):
    """``cream_avg`` (CREAM's default): every pair weighted by the dataset-level consistency rate C."""

    def _weights(self, pair_consistency: Sequence[float | None], dataset_consistency: float | None) -> list[float]:
        if dataset_consistency is None:
            raise ValueError("regularizer=cream_avg: no prompt had a defined consistency (every prompt's reward vector "
                             "was constant for one of the models), so there is no dataset-level C; "
                             "use regularizer=fixed or regularizer=none")
        c = _check(dataset_consistency, "dataset consistency")
        return [c] * len(pair_consistency)


class PairConsistency(_Floored):
    """``cream_dyn``: each pair its own C_j; an undefined C_j (``None``) falls back to the dataset mean."""

    def _weights(self, pair_consistency: Sequence[float | None], dataset_consistency: float | None) -> list[float]:
        out = []
        for j, c in enumerate(pair_consistency):
            if c is None:
                if dataset_consistency is None:
                    raise ValueError(f"regularizer=cream_dyn: pair {j} has no C_j and no prompt had a defined "
                                     "consistency, so there is no dataset mean to fall back to")
                c = dataset_consistency
            out.append(_check(c, f"C of pair {j}"))
        return out


class FixedConsistency(_Floored):
    """``fixed``: the same constant C for every pair (the paper's "w/o adaptive C" ablation)."""

    def __init__(self, c: float = 0.5, min_c: float | None = None):
        super().__init__(min_c)
        self.c = _check(c, "regularizer.c")

    def _weights(self, pair_consistency: Sequence[float | None], dataset_consistency: float | None) -> list[float]:
        return [self.c] * len(pair_consistency)
