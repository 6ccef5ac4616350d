"""cream.method.regularizers: the weight C each regularizer gives every pair."""
from __future__ import annotations

import pytest

from cream.method.regularizers import DatasetConsistency, FixedConsistency, NoRegularizer, PairConsistency, Regularizer

PAIRS = [0.2, None, 0.9, 0.5]


def test_none_is_plain_dpo():
    assert NoRegularizer().weights(PAIRS, 0.6) == [1.0, 1.0, 1.0, 1.0]
    assert NoRegularizer().weights([None], None) == [1.0]


def test_cream_avg_uses_dataset_mean():
    assert DatasetConsistency().weights(PAIRS, 0.6) == [0.6, 0.6, 0.6, 0.6]


def test_cream_avg_without_dataset_consistency_errors():
    with pytest.raises(ValueError, match="no prompt had a defined consistency"):
        DatasetConsistency().weights([None, None], None)


def test_cream_dyn_per_pair_with_fallback_to_mean():
    assert PairConsistency().weights(PAIRS, 0.6) == [0.2, 0.6, 0.9, 0.5]
    assert PairConsistency().weights([0.3, 0.7], None) == [0.3, 0.7]  # no fallback needed
    with pytest.raises(ValueError, match="fall back"):
        PairConsistency().weights([0.3, None], None)
    with pytest.raises(ValueError, match="pair 1"):
        PairConsistency().weights([0.3, 1.2], 0.5)


@pytest.mark.parametrize("c", [0.0, 0.35, 1])
def test_fixed(c):
    assert FixedConsistency(c).weights(PAIRS, 0.6) == [float(c)] * 4


@pytest.mark.parametrize("c", [-0.1, 1.01, float("nan"), "high"])
def test_fixed_validation(c):
    with pytest.raises(ValueError, match="regularizer.c"):
        FixedConsistency(c)


def test_protocol():
    regs: list[Regularizer] = [NoRegularizer(), DatasetConsistency(), PairConsistency(), FixedConsistency(0.5)]
    assert all(r.weights([], 0.5) == [] for r in regs)


def test_min_c_floors_every_regularizer():
    # C' = max(C, min_c) with min_c = 0.5: 0.2 -> 0.5, the fallback 0.3 -> 0.5, 0.9 and 0.5 unchanged
    assert PairConsistency(min_c=0.5).weights(PAIRS, 0.3) == [0.5, 0.5, 0.9, 0.5]
    assert DatasetConsistency(min_c=0.5).weights(PAIRS, 0.14) == [0.5] * 4
    assert DatasetConsistency(min_c=0.5).weights(PAIRS, 0.7) == [0.7] * 4
    assert FixedConsistency(0.3, min_c=0.5).weights(PAIRS, 0.6) == [0.5] * 4
    assert NoRegularizer(min_c=0.5).weights(PAIRS, 0.6) == [1.0] * 4
    assert PairConsistency(min_c=None).weights(PAIRS, 0.3) == [0.2, 0.3, 0.9, 0.5]  # off: as before
    with pytest.raises(ValueError, match="regularizer.min_c"):
        PairConsistency(min_c=1.5)
