"""Per-iteration diagnostics of a self-rewarding run: what the samples look like, which pairs the reward
makes, and whether the consistency C tracks the quality of those pairs.

The pairs stage computes them (:func:`diagnostics`) into its summary under ``diagnostics``; ``results.jsonl``
carries them on the row of the model trained in that iteration, ``metrics.csv``/wandb as
``iter/diagnostics/<name>`` and ``cream-table --columns`` by name.  Every name is in ``DIAGNOSTICS``.

Samples (all responses of the iteration):
    truncation_rate   share of responses cut at sampling.max_new_tokens (``finished: false``)
    mean_length       mean |y| in tokens (the response and its end-of-turn token, as scored and trained)
    repetition_rate   share of responses in which one non-empty line occurs >= REPEAT_K times, or one word
                      REPEAT_N-gram does (whitespace words): REPEAT_K = 3, REPEAT_N = 4
    distinct_2        distinct word bigrams / all word bigrams, pooled over the responses (Li et al. 2016)
Pairs:
    chosen_length, rejected_length   mean |y+| and |y-| in tokens
On verifiable prompts (a gold answer in ``labels.jsonl``; correctness by the evaluation's answer extraction):
    n_verifiable      pairs on such prompts
    good_pairs        share of them with y+ right and y- wrong
    bad_pairs         share with y+ wrong and y- right
    other_pairs       the rest (both right or both wrong)
    auc_c             AUC of the prompt's C_j as a score telling good pairs (positive) from bad ones: the
                      probability that a good pair's C exceeds a bad pair's, ties counting 1/2 (Mann-Whitney);
                      pairs with an undefined C_j are left out; null without a good and a bad pair
    auc_c_lo/_hi      its 95% percentile bootstrap interval: BOOTSTRAP resamples, good and bad pairs each
                      resampled with replacement within their group, seed SEED
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

REPEAT_K, REPEAT_N = 3, 4
BOOTSTRAP, SEED = 1000, 0
DIAGNOSTICS = ("truncation_rate", "mean_length", "repetition_rate", "distinct_2", "chosen_length", "rejected_length",
               "good_pairs", "bad_pairs", "other_pairs", "n_verifiable", "auc_c", "auc_c_lo", "auc_c_hi")


def _words(text: str) -> list[str]:
    return text.split()


def ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def repeats(text: str, k: int = REPEAT_K, n: int = REPEAT_N) -> bool:
    """True when one non-empty line (stripped) occurs >= k times, or one word n-gram does."""
    lines = Counter(line.strip() for line in text.splitlines() if line.strip())
    grams = Counter(ngrams(_words(text), n))
    return any(c >= k for c in lines.values()) or any(c >= k for c in grams.values())


def repetition_rate(texts: Sequence[str], k: int = REPEAT_K, n: int = REPEAT_N) -> float | None:
    return _share([repeats(t, k, n) for t in texts])


def distinct_n(texts: Sequence[str], n: int = 2) -> float | None:
    """Distinct word n-grams over all n-grams of all texts (None when there is none)."""
    grams = [g for t in texts for g in ngrams(_words(t), n)]
    return len(set(grams)) / len(grams) if grams else None


def _share(flags: Sequence[bool]) -> float | None:
    return sum(map(bool, flags)) / len(flags) if len(flags) else None


def _mean(xs: Sequence[float | None]) -> float | None:
    """The mean of the known values (a length is None where a run dir did not record it)."""
    known = [x for x in xs if x is not None]
    return float(np.mean(known)) if known else None


def pair_kind(chosen_right: bool, rejected_right: bool) -> str:
    """good: y+ right and y- wrong; bad: the reverse; other: both right or both wrong."""
    if chosen_right != rejected_right:
        return "good" if chosen_right else "bad"
    return "other"


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative) + 1/2 P(tie); None without both classes."""
    p, q = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if not p.size or not q.size:
        return None
    diff = p[:, None] - q[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def bootstrap_auc(positives: Sequence[float], negatives: Sequence[float], n: int = BOOTSTRAP,
                  seed: int = SEED) -> tuple[float | None, float | None]:
    """95% percentile interval of :func:`auc`, each class resampled with replacement within itself."""
    p, q = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if not p.size or not q.size:
        return None, None
    rng = np.random.default_rng(seed)
    stats = [auc(rng.choice(p, p.size), rng.choice(q, q.size)) for _ in range(n)]
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def diagnostics(samples: Sequence[dict], n_tokens: Sequence[Sequence[int] | None], pairs: Sequence[dict],
                correct: dict[str, list[bool]], consistency: dict[str, float | None]) -> dict:
    """Every diagnostic of one iteration (module docstring).

    ``samples``: rows with ``responses`` and ``finished``; ``n_tokens``: |y| of each response, same layout;
    ``pairs``: rows with ``prompt_id``, ``chosen_index``, ``rejected_index``; ``correct``: prompt_id ->
    correctness of each response (verifiable prompts only); ``consistency``: prompt_id -> C_j (None: undefined).
    """
    texts = [r for s in samples for r in s["responses"]]
    finished = [f for s in samples for f in s.get("finished") or [True] * len(s["responses"])]  # none: all finished
    n_tokens = [list(n) if n is not None else [None] * len(s["responses"])
                for s, n in zip(samples, n_tokens, strict=True)]
    lengths = {s["prompt_id"]: n for s, n in zip(samples, n_tokens)}
    out = {"truncation_rate": _share([not f for f in finished]),
           "mean_length": _mean([k for n in n_tokens for k in n]),
           "repetition_rate": repetition_rate(texts), "distinct_2": distinct_n(texts, 2),
           "chosen_length": _mean([lengths[p["prompt_id"]][p["chosen_index"]] for p in pairs]),
           "rejected_length": _mean([lengths[p["prompt_id"]][p["rejected_index"]] for p in pairs])}
    verifiable = [p for p in pairs if p["prompt_id"] in correct]
    kinds = [pair_kind(correct[p["prompt_id"]][p["chosen_index"]], correct[p["prompt_id"]][p["rejected_index"]])
             for p in verifiable]
    for kind in ("good", "bad", "other"):
        out[f"{kind}_pairs"] = _share([k == kind for k in kinds])
    out["n_verifiable"] = len(verifiable)
    scored = [(k, consistency.get(p["prompt_id"])) for p, k in zip(verifiable, kinds)]
    good = [c for k, c in scored if k == "good" and c is not None]
    bad = [c for k, c in scored if k == "bad" and c is not None]
    out["auc_c"] = auc(good, bad)
    out["auc_c_lo"], out["auc_c_hi"] = bootstrap_auc(good, bad)
    return out
