"""cream.method.ranking: the ranking-agreement measures and the dataset summary."""
from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from scipy import stats

from cream.method.ranking import dataset_consistency, kendall, spearman, toporder


def random_cases(n_cases: int = 200, seed: int = 0):
    """Integer rewards from a small range (many ties), N in 2..8, non-constant vectors only."""
    rng = random.Random(seed)
    out = []
    while len(out) < n_cases:
        n = rng.randint(2, 8)
        a = [float(rng.randint(0, 3)) for _ in range(n)]
        b = [float(rng.randint(0, 3)) for _ in range(n)]
        if len(set(a)) > 1 and len(set(b)) > 1:
            out.append((a, b))
    return out


def tau_b_brute(a: list[float], b: list[float]) -> float:
    """tau_b = (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2)) by counting all pairs."""
    def sign(x: float) -> int:
        return (x > 0) - (x < 0)

    conc = disc = untied_a = untied_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        sa, sb = sign(a[i] - a[j]), sign(b[i] - b[j])
        conc += sa * sb > 0
        disc += sa * sb < 0
        untied_a += sa != 0
        untied_b += sb != 0
    return (conc - disc) / math.sqrt(untied_a * untied_b)


def average_ranks(v: list[float]) -> list[float]:
    return [sum(y < x for y in v) + (sum(y == x for y in v) + 1) / 2 for x in v]


def toporder_brute(a: list[float], b: list[float]) -> float:
    best = any(a[i] == max(a) and b[i] == max(b) for i in range(len(a)))
    worst = any(a[i] == min(a) and b[i] == min(b) for i in range(len(a)))
    return float(best and worst)


@pytest.mark.parametrize("a,b", random_cases())
def test_kendall_vs_scipy_and_brute_force(a, b):
    c = kendall(a, b)
    assert c == pytest.approx((stats.kendalltau(a, b, variant="b").statistic + 1) / 2, abs=1e-12)
    assert c == pytest.approx((tau_b_brute(a, b) + 1) / 2, abs=1e-12)
    assert 0 <= c <= 1


def test_kendall_hand_values():
    assert kendall([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall([1, 2, 3, 4], [4, 3, 2, 1]) == 0.0
    # [1,2,3] vs [1,3,2]: n_c = 2, n_d = 1 -> tau = 1/3 -> C = 2/3
    assert kendall([1, 2, 3], [1, 3, 2]) == pytest.approx(2 / 3)
    # with a tie: [1,1,2] vs [1,2,3]: n_c = 2, n_d = 0, untied 2 and 3 -> tau = 2/sqrt(6)
    assert kendall([1, 1, 2], [1, 2, 3]) == pytest.approx((2 / math.sqrt(6) + 1) / 2)


@pytest.mark.parametrize("a,b", random_cases(100, seed=1))
def test_spearman_vs_scipy_and_average_ranks(a, b):
    c = spearman(a, b)
    assert c == pytest.approx((stats.spearmanr(a, b).statistic + 1) / 2, abs=1e-12)
    rho = np.corrcoef(average_ranks(a), average_ranks(b))[0, 1]
    assert c == pytest.approx((rho + 1) / 2, abs=1e-12)


@pytest.mark.parametrize("a,b", random_cases(200, seed=2))
def test_toporder_vs_brute_force(a, b):
    assert toporder(a, b) == toporder_brute(a, b)


def test_toporder_hand_values():
    assert toporder([3, 1, 2], [9, 0, 5]) == 1.0   # same best (0) and worst (1)
    assert toporder([3, 1, 2], [9, 5, 0]) == 0.0   # worst differs
    assert toporder([3, 3, 1], [1, 5, 0]) == 1.0   # tied best {0, 1} meets {1}; worst {2} both
    assert toporder([3, 3, 1], [5, 1, 0]) == 1.0
    assert toporder([3, 1, 1], [0, 5, 0]) == 0.0   # best {0} vs {1}


@pytest.mark.parametrize("measure", [kendall, spearman, toporder])
@pytest.mark.parametrize("a,b", [([2, 2, 2], [1, 2, 3]), ([1, 2, 3], [0.5, 0.5, 0.5]), ([1], [2]), ([], [])])
def test_constant_vectors_undefined(measure, a, b):
    assert measure(a, b) is None


@pytest.mark.parametrize("measure", [kendall, spearman, toporder])
def test_measure_length_mismatch(measure):
    with pytest.raises(ValueError):
        measure([1, 2, 3], [1, 2])


def test_dataset_consistency_summary():
    rng = random.Random(3)
    cur = [[float(rng.randint(0, 4)) for _ in range(5)] for _ in range(40)]
    prev = [[float(rng.randint(0, 4)) for _ in range(5)] for _ in range(40)]
    cur[3], prev[7] = [1.0] * 5, [2.0] * 5  # two undefined prompts
    per_prompt, s = dataset_consistency(kendall, cur, prev)
    assert per_prompt == [kendall(a, b) for a, b in zip(cur, prev)]
    assert per_prompt[3] is None and per_prompt[7] is None
    defined = np.array([c for c in per_prompt if c is not None])
    assert s["n"] == 38 and s["n_undefined"] == 2
    assert s["mean"] == pytest.approx(np.mean(defined))
    assert s["std"] == pytest.approx(np.std(defined, ddof=0))
    assert s["min"] == pytest.approx(defined.min()) and s["max"] == pytest.approx(defined.max())
    assert "excluded" in s["undefined"] and "mean" in s["undefined"]


def test_dataset_consistency_none_defined():
    per_prompt, s = dataset_consistency(spearman, [[1, 1], [2, 2, 2]], [[0, 1], [1, 2, 3]])
    assert per_prompt == [None, None]
    assert s["mean"] is None and s["std"] is None and s["min"] is None and s["max"] is None
    assert s["n"] == 0 and s["n_undefined"] == 2


def test_dataset_consistency_errors_name_prompt():
    with pytest.raises(ValueError, match="prompt 1"):
        dataset_consistency(kendall, [[1, 2], [1, 2, 3]], [[1, 2], [1, 2]])
    with pytest.raises(ValueError, match="prompt 1"):
        dataset_consistency(kendall, [[1, 2], [1, float("nan")]], [[1, 2], [1, 2]])
    with pytest.raises(ValueError, match="prompt 0"):
        dataset_consistency(kendall, [[1, 2]], [[1, float("inf")]])
    with pytest.raises(ValueError, match="prompt 0"):
        dataset_consistency(kendall, [[1, None]], [[1, 2]])
    with pytest.raises(ValueError):
        dataset_consistency(kendall, [[1, 2]], [])
