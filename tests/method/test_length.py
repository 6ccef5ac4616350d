"""cream.method.length: the per-token reward, the length penalty, DICE's alpha rule, the truncated-response drop."""
from __future__ import annotations

import pytest

from cream.method.length import (
    balance_alpha,
    drop_unfinished,
    length_penalty,
    pair_lengths,
    per_token,
    truncation_counts,
)


def test_per_token_divides_by_length():
    # implicit reward (log pi_t - log pi_0) of 3 responses of 4, 10 and 5 tokens
    assert per_token([-2.0, 5.0, None], [4, 10, 5]) == [-0.5, 0.5, None]
    # it can reorder: summed, the 10-token response wins (5 > 3); per token the 2-token one does (1.5 > 0.5)
    assert per_token([3.0, 5.0], [2, 10]) == [1.5, 0.5]


def test_length_penalty():
    # r - alpha |y| with alpha = 0.25: 5 - 2.5 = 2.5, 3 - 0.5 = 2.5, 1 - 1 = 0
    assert length_penalty([5.0, 3.0, 1.0, None], [10, 2, 4, 7], 0.25) == [2.5, 2.5, 0.0, None]
    assert length_penalty([5.0], [10], 0.0) == [5.0]


def test_drop_unfinished_and_counts():
    assert drop_unfinished([1.0, 2.0, 3.0], [True, False, True]) == [1.0, None, 3.0]
    finished = [[True, False, True], [False, False, True], [True, True, True], [False, False, False]]
    # dropped: 1 + 2 + 0 + 3 = 6; prompts left with < 2 responses: the second (1) and the fourth (0)
    assert truncation_counts(finished) == {"n_truncated_dropped": 6, "n_prompts_lt2": 2}


def test_pair_lengths_follow_select_pair():
    import numpy as np
    r = np.array([[3.0, 1.0, 2.0], [1.0, 1.0, np.nan]])
    n = np.array([[10.0, 2.0, 4.0], [5.0, 5.0, 0.0]])
    # prompt 0: best = 0 (10 tokens), worst = 1 (2 tokens); prompt 1: all tie -> no pair
    assert pair_lengths(r, n, 0.0) == (10.0, 2.0, 1)
    # alpha = 0.5: scores 3-5=-2, 1-1=0, 2-2=0 -> best = 1 (first of the tied), worst = 0
    assert pair_lengths(r, n, 0.5) == (2.0, 10.0, 1)


def test_balance_alpha_by_hand():
    # prompt A: r = (4, 1), |y| = (10, 2): the long one wins until alpha = (4-1)/(10-2) = 0.375
    # prompt B: r = (2, 1), |y| = (6, 4): the long one wins until alpha = (2-1)/(6-4) = 0.5
    # alpha = 0: L+ = (10+6)/2 = 8 > L- = 3.  On (0.375, 0.5): A flips, L+ = (2+6)/2 = 4, L- = (10+4)/2 = 7.
    # The first interval where L+ <= L- is (0.375, 0.5): alpha = its midpoint 0.4375.
    out = balance_alpha([[4.0, 1.0], [2.0, 1.0]], [[10, 2], [6, 4]])
    assert out == {"alpha": pytest.approx(0.4375), "balanced": True, "chosen_length": 4.0, "rejected_length": 7.0,
                   "n_breakpoints": 2}


def test_balance_alpha_zero_when_already_balanced_and_unbalanceable():
    # the short response already wins: alpha = 0
    assert balance_alpha([[1.0, 4.0]], [[10, 2]])["alpha"] == 0.0
    # equal lengths: L+ = L- at alpha = 0 (balanced)
    assert balance_alpha([[1.0, 4.0]], [[3, 3]]) == {"alpha": 0.0, "balanced": True, "chosen_length": 3.0,
                                                     "rejected_length": 3.0, "n_breakpoints": 0}
    # unscored responses are ignored (prompt 2 has one score left and gives no pair): one breakpoint, 0.375;
    # the intervals (0, 0.375) and (0.375, 2 x 0.375): the second balances, alpha = 0.5625
    out = balance_alpha([[4.0, 1.0, None], [5.0, None]], [[10, 2, 1], [50, 1]])
    assert out["alpha"] == pytest.approx(0.5625) and out["n_breakpoints"] == 1
    assert (out["chosen_length"], out["rejected_length"]) == (2.0, 10.0)


def test_control_rewards_in_order():
    from cream.method.length import control_rewards

    reward, prev = [[4.0, 1.0, 9.0], [2.0, 1.0]], [[1.0, 2.0, 3.0], [0.5, 0.25]]
    n, fin = [[10, 2, 30], [6, 4]], [[True, True, False], [True, True]]
    # off: unchanged
    assert control_rewards(reward, prev, n, fin) == (reward, prev, {})
    # drop, then per token on both sides
    r, p, s = control_rewards(reward, prev, n, fin, length="per_token", drop_truncated=True)
    assert r == [[0.4, 0.5, None], [2 / 6, 0.25]] and p == [[0.1, 1.0, None], [0.5 / 6, 0.25 / 4]]
    assert s == {"n_truncated_dropped": 1, "n_prompts_lt2": 0}
    # drop, then DICE's balance on M_t's rewards (the hand example of test_balance_alpha_by_hand: 0.4375),
    # M0's per-token log-likelihood at t = 1 left as it is
    r, p, s = control_rewards(reward, prev, n, fin, length="penalty", alpha_rule="balance", drop_truncated=True,
                              prev_is_reward=False)
    assert s["length_alpha"] == pytest.approx(0.4375) and s["length_alpha_balanced"] is True
    assert r[0] == [pytest.approx(4 - 4.375), pytest.approx(1 - 0.875), None] and p == [[1.0, 2.0, None], [0.5, 0.25]]
    # fixed alpha on both sides
    r, p, s = control_rewards(reward, prev, n, fin, length="penalty", alpha=0.5)
    assert r == [[-1.0, 0.0, -6.0], [-1.0, -1.0]] and p[1] == [-2.5, -1.75] and s == {"length_alpha": 0.5}
