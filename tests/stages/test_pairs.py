"""Pair selection: best vs worst under M_t's rewards; all-tied prompts dropped."""
import pytest

from cream.stages.pairs import select_pair


@pytest.mark.parametrize("rewards, expected", [
    ([0.1, 0.5, -0.2, 0.3], (1, 2)),
    ([1.0, 1.0, 0.0, 0.0], (0, 2)),          # tied best / worst: the first listed
    ([0.0, 2.0, 2.0, -1.0, -1.0], (1, 3)),
    ([0.3, 0.3, 0.3, 0.3], None),            # all tie: dropped
    ([0.3, None, 0.1, None], (0, 2)),        # unscored responses are skipped
    ([None, 0.2, None], None),               # fewer than two scored
    ([-5.0, -5.0 + 1e-9], (1, 0)),
])
def test_select_pair(rewards, expected):
    assert select_pair(rewards) == expected


def test_select_pair_brute_force():
    import itertools

    for rewards in itertools.product([0, 1, 2], repeat=4):
        pick = select_pair(list(rewards))
        if len(set(rewards)) == 1:
            assert pick is None
        else:
            b, w = pick
            assert rewards[b] == max(rewards) and b == rewards.index(max(rewards))
            assert rewards[w] == min(rewards) and w == rewards.index(min(rewards))
