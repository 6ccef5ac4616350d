"""Log-likelihood scoring with a shared context (cream.models.scoring.score_shared_context): each question's
context runs once and its options are scored from its KV cache, with the log-likelihoods of scoring each
option whole, in fewer tokens."""
from __future__ import annotations

import pytest

from cream.data.benchmarks import load_benchmark
from cream.evaluation import lm_eval_format
from cream.models.scoring import score_sequences, score_shared_context, shared_groups


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from cream.models.loading import load_model, load_tokenizer

    return load_model(tiny_dir), load_tokenizer(tiny_dir)


@pytest.mark.parametrize("batch_size", [3, 64])
def test_shared_context_equals_per_option_scores(tiny, batch_size):
    """ARC-Easy questions in lm-eval's format: every option's log-likelihood equals the per-option score to 1e-4,
    at a batch that splits questions' option groups apart and at one holding many questions."""
    model, tok = tiny
    examples = load_benchmark("arc_easy", "test")[:12]
    _, seqs, starts = lm_eval_format.requests(tok, examples, 256)
    sizes = [len(ex.choices) for ex in examples]
    whole = score_sequences(model, seqs, starts, tok.pad_token_id, batch_size=8, progress=False)
    shared, tokens = score_shared_context(model, seqs, starts, sizes, tok.pad_token_id, batch_size=batch_size,
                                          progress=False)
    assert shared == pytest.approx(whole, abs=1e-4)
    assert tokens["tokens_per_sequence"] == sum(map(len, seqs))
    assert tokens["tokens_shared"] < tokens["tokens_per_sequence"]  # each context counted once, not once per option
    assert tokens["tokens_shared"] == sum(starts[sum(sizes[:g])] for g in range(len(sizes))) + sum(
        len(s) - st for s, st in zip(seqs, starts))


def test_groups_that_do_not_share_a_context_are_scored_whole(tiny):
    """A group whose sequences start differently is scored sequence by sequence: still the same values."""
    model, tok = tiny
    seqs = [[5, 6, 7, 8, 9], [5, 6, 7, 10], [5, 6, 11, 12], [20, 21, 22]]
    starts = [3, 3, 3, 1]
    sizes = [2, 2]  # group 0: context [5, 6, 7] twice; group 1: [5, 6, 11] vs [20]
    assert shared_groups(seqs, starts, sizes) == [True, False]
    shared, tokens = score_shared_context(model, seqs, starts, sizes, tok.pad_token_id, progress=False)
    assert shared == pytest.approx(score_sequences(model, seqs, starts, tok.pad_token_id, progress=False), abs=1e-4)
    assert tokens == {"tokens_per_sequence": 16, "tokens_shared": 3 + 2 + 1 + 4 + 3}


def test_group_sizes_must_cover_the_sequences(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="sum to 3 for 2 sequences"):
        score_shared_context(model, [[1, 2], [1, 3]], [1, 1], [3], tok.pad_token_id, progress=False)
