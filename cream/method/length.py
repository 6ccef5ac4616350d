"""How a rewarder's scores become the rankings that make pairs: length control and truncated responses.

Extensions of the paper (config section ``reward``, all off by default), each a pure function of the
per-prompt reward vectors (``None``: a response without a score) and the response lengths |y| in tokens:

``per_token``   r / |y|.  For the implicit reward r = log pi_t(y|x) - log pi_0(y|x) this is the
                length-normalised reward of SimPO (Meng et al. 2024, Eq. 4: (beta / |y|) log pi(y|x)),
                here as a log-ratio against pi_0.
``penalty``     r - alpha |y|: the length term of R-DPO (Park et al. 2024, "Disentangling Length from Quality
                in Direct Preference Optimization", which adds alpha (|y+| - |y-|) to DPO's logit) applied to
                the reward that ranks, as DICE's length-regularized reward shaping does with the implicit reward
                (Chen et al. 2024, "Bootstrapping Language Models with DPO Implicit Rewards").
                alpha is fixed (``reward.length_alpha``) or chosen per iteration by :func:`balance_alpha`.
``drop``        responses cut at ``sampling.max_new_tokens`` (``finished: false``) lose their score before
                ranking and pairing (TRL's ``mask_truncated_completions``, here for the pairs).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Vector = Sequence["float | None"]


def per_token(rewards: Vector, n_tokens: Sequence[int]) -> list[float | None]:
    """r / |y| per response (|y| >= 1); ``None`` stays ``None``."""
    return [None if r is None else r / max(int(n), 1) for r, n in zip(rewards, n_tokens, strict=True)]


def length_penalty(rewards: Vector, n_tokens: Sequence[int], alpha: float) -> list[float | None]:
    """r - alpha |y| per response; ``None`` stays ``None``."""
    return [None if r is None else r - alpha * int(n) for r, n in zip(rewards, n_tokens, strict=True)]


def drop_unfinished(rewards: Vector, finished: Sequence[bool]) -> list[float | None]:
    """The rewards with every unfinished (truncated) response's set to ``None``: unranked, never in a pair."""
    return [r if f else None for r, f in zip(rewards, finished, strict=True)]


def truncation_counts(finished: Sequence[Sequence[bool]]) -> dict:
    """``n_truncated_dropped``: responses dropped; ``n_prompts_lt2``: prompts left with fewer than 2."""
    return {"n_truncated_dropped": sum(not f for row in finished for f in row),
            "n_prompts_lt2": sum(sum(map(bool, row)) < 2 for row in finished)}


def _padded(rewards: Sequence[Vector], n_tokens: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(r) for r in rewards), default=0)
    r = np.full((len(rewards), width), np.nan)
    n = np.zeros((len(rewards), width))
    for j, (rs, ns) in enumerate(zip(rewards, n_tokens, strict=True)):
        for i, (x, k) in enumerate(zip(rs, ns, strict=True)):
            if x is not None:
                r[j, i], n[j, i] = x, k
    return r, n


def pair_lengths(r: np.ndarray, n: np.ndarray, alpha: float) -> tuple[float, float, int]:
    """Mean |y+| and |y-| of the pairs best vs worst of r - alpha n (rows: prompts, NaN: no score; the
    first listed wins a tie, as ``cream.stages.pairs.select_pair``), and how many prompts give a pair."""
    s = r - alpha * n
    has = ~np.isnan(s)
    best = np.argmax(np.where(has, s, -np.inf), axis=1)
    worst = np.argmin(np.where(has, s, np.inf), axis=1)
    rows = np.arange(len(s))
    ok = (has.sum(axis=1) >= 2) & (s[rows, best] != s[rows, worst])
    if not ok.any():
        return float("nan"), float("nan"), 0
    return float(n[rows, best][ok].mean()), float(n[rows, worst][ok].mean()), int(ok.sum())


def balance_alpha(rewards: Sequence[Vector], n_tokens: Sequence[Sequence[int]]) -> dict:
    """DICE's rule for alpha (alpha tuned so that chosen and rejected responses have about the same mean
    length), made exact.

    Let L+(alpha), L-(alpha) be the mean lengths of the chosen and rejected responses of the pairs formed
    with r - alpha |y|.  Between consecutive breakpoints b_k, the positive values (r_i - r_j) / (|y_i| - |y_j|)
    over the responses i, j of one prompt, the pairs and so L+ and L- do not change.  The rule:

        alpha = 0                               if L+(0) <= L-(0);
        alpha = (b_k + b_{k+1}) / 2             for the first interval (b_k, b_{k+1}) (b_0 = 0, b_{m+1} = 2 b_m)
                                                on which L+(alpha) <= L-(alpha).

    (The midpoint, so no tie decides a pair.)  For a large enough alpha the shortest response is chosen and
    the longest rejected, so an interval is found unless every prompt's responses have one length; then
    alpha = 0 and ``balanced`` is false.  Returns ``{"alpha", "balanced", "chosen_length",
    "rejected_length", "n_breakpoints"}`` (the lengths at the alpha chosen).
    """
    r, n = _padded(rewards, n_tokens)
    points = set()
    for rs, ns in zip(r, n):
        idx = [i for i in range(len(rs)) if not np.isnan(rs[i])]
        for a in idx:
            for b in idx:
                if ns[a] > ns[b] and rs[a] > rs[b]:  # a longer and better: overtaken by b at this alpha
                    points.add(float((rs[a] - rs[b]) / (ns[a] - ns[b])))
    bounds = sorted(points)
    candidates = ([0.0] + [(lo + hi) / 2 for lo, hi in zip([0.0, *bounds], [*bounds, 2 * bounds[-1]])]
                  if bounds else [0.0])
    for alpha in candidates:
        plus, minus, n_pairs = pair_lengths(r, n, alpha)
        if n_pairs and plus <= minus:
            return {"alpha": alpha, "balanced": True, "chosen_length": plus, "rejected_length": minus,
                    "n_breakpoints": len(bounds)}
    plus, minus, _ = pair_lengths(r, n, 0.0)
    return {"alpha": 0.0, "balanced": False, "chosen_length": plus, "rejected_length": minus,
            "n_breakpoints": len(bounds)}


def control_rewards(reward: Sequence[Vector], prev_reward: Sequence[Vector], n_tokens: Sequence[Sequence[int]],
                    finished: Sequence[Sequence[bool]], *, length: str = "none", alpha: float = 0.0,
                    alpha_rule: str = "fixed", drop_truncated: bool = False,
                    prev_is_reward: bool = True) -> tuple[list[list], list[list], dict]:
    """The ``reward`` section applied to one iteration's per-prompt reward vectors (M_t's and M_{t-1}'s).

    In order: unfinished responses lose their score (``drop_truncated``); then M_t's reward becomes r / |y|
    (``per_token``) or r - alpha |y| (``penalty``; alpha fixed, or :func:`balance_alpha` of M_t's rewards).
    M_{t-1}'s side gets the same transform with the same alpha, so consistency compares like with like,
    unless it is not a reward (``prev_is_reward=False``: M0's log pi_0 / |y| at t = 1, kept as the official
    code ranks it).  Returns the two lists and a summary (the counts, ``length_alpha``).
    """
    reward, prev = [list(r) for r in reward], [list(r) for r in prev_reward]
    summary: dict = {}
    if drop_truncated:
        reward = [drop_unfinished(r, f) for r, f in zip(reward, finished, strict=True)]
        prev = [drop_unfinished(r, f) for r, f in zip(prev, finished, strict=True)]
        summary |= truncation_counts(finished)
    if length == "none":
        return reward, prev, summary
    if length == "per_token":
        transform = per_token
    elif length == "penalty":
        if alpha_rule == "balance":
            rule = balance_alpha(reward, n_tokens)
            alpha = rule["alpha"]
            summary["length_alpha_balanced"] = rule["balanced"]
        summary["length_alpha"] = float(alpha)
        transform = lambda r, n: length_penalty(r, n, alpha)  # noqa: E731
    else:
        raise ValueError(f"reward.length={length!r}: must be none, per_token or penalty")
    reward = [transform(r, n) for r, n in zip(reward, n_tokens, strict=True)]
    if prev_is_reward:
        prev = [transform(r, n) for r, n in zip(prev, n_tokens, strict=True)]
    return reward, prev, summary
