"""Reward quality: how well a rewarder's ranking agrees with a verifiable ranking.

On benchmarks with a checkable answer, a response whose extracted answer is correct should rank above
a wrong one.  For one iteration, with the responses of ``sample/samples.jsonl``, their gold answers
from ``sample/labels.jsonl`` (never shown to a rewarder) and the rewards of ``reward/rewards.jsonl``:

``pairwise_accuracy``  over every (correct, wrong) pair of responses to the same prompt, both scored:
                       the fraction where the correct one has the strictly higher reward (a tie counts
                       as a miss; ``pairwise_ties`` is the fraction of ties).
``exact_match``        over the prompts with at least one correct and one wrong scored response: the
                       fraction whose reward ordering matches the verifiable one, i.e. every correct
                       response scores strictly above every wrong one.
``five_best``          the judge only (rows with ``judge_scores``): of the responses whose reward is 5
                       (every valid judgment gave 5), the fraction that are correct; ``None`` for other
                       rewarders and when no response scored 5.
``spearman``/``kendall`` the mean over prompts of Spearman's rho / Kendall's tau-b between the reward
                       vector and the 0/1 correctness vector (scored responses only; prompts where
                       either vector is constant have none and are left out, counted in ``n_rank_prompts``).

Per iteration also: ``parse_failure_rate`` and ``score_hist`` (judge), ``n_dropped`` /
``dropped_rate`` (prompts without a pair because their rewards tie), chosen/rejected lengths and
correctness, ``tau_hist`` (histogram of the per-prompt consistency tau between M_t and M_{t-1}) and
``correctness_tau_hist`` (of the per-prompt Kendall tau against correctness), both on the bins
``TAU_BINS``.  The pairs stage writes this to ``iter_t/pairs/reward_quality.json`` and its summary;
``results.jsonl`` carries it per model under ``reward_quality``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from scipy import stats

from cream import artifacts
from cream.data.benchmarks import Example
from cream.evaluation.answers import is_correct
from cream.paths import RunPaths

TAU_BINS = [-1.0, -0.5, 0.0, 0.5, 1.0]  # numpy.histogram edges: [-1,-.5) [-.5,0) [0,.5) [.5,1]
_OPTION = re.compile(r"^([A-Z])\.\s", re.MULTILINE)


def label_example(benchmark: str, prompt_id: str, answer: str, instruction: str | None = None) -> Example:
    """A light Example, enough for ``is_correct``: GSM8K is numeric, the others multiple choice with
    the option letters read from the prompt ("A. text" lines; A-E when there are none)."""
    if benchmark == "gsm8k":
        return Example(prompt_id, benchmark, "", None, None, str(answer))
    labels = tuple(dict.fromkeys(_OPTION.findall(instruction or ""))) or tuple("ABCDE")
    return Example(prompt_id, benchmark, "", tuple("" for _ in labels), labels, str(answer))


def correctness(samples: Sequence[dict], labels: Sequence[dict]) -> dict[str, list[bool]]:
    """prompt_id -> whether each response's extracted answer is correct."""
    gold = {r["prompt_id"]: r["answer"] for r in labels}
    out = {}
    for s in samples:
        if s["prompt_id"] not in gold:
            continue
        ex = label_example(s.get("benchmark", ""), s["prompt_id"], gold[s["prompt_id"]],
                           s.get("instruction", s.get("prompt")))
        out[s["prompt_id"]] = [is_correct(ex, r) for r in s["responses"]]
    return out


def _histogram(values: Sequence[float]) -> dict:
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=TAU_BINS)
    return {"bins": TAU_BINS, "counts": [int(c) for c in counts]}


def _mean(xs: Sequence[float]) -> float | None:
    return float(np.mean(xs)) if len(xs) else None


def _rank_corr(fn, a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2 or min(a) == max(a) or min(b) == max(b):
        return None
    v = fn(a, b).statistic
    return None if math.isnan(v) else float(v)


def ranking_metrics(rewards: Sequence[Sequence[float | None]], correct: Sequence[Sequence[bool]],
                    judge: bool = False) -> dict:
    """The ranking metrics (module docstring) of per-prompt reward vectors against per-prompt correctness."""
    n_pairs = hits = ties = 0
    n_mixed = exact = 0
    five = five_correct = 0
    rhos, taus = [], []
    for rs, cs in zip(rewards, correct):
        scored = [(r, bool(c)) for r, c in zip(rs, cs) if r is not None]
        good = [r for r, c in scored if c]
        bad = [r for r, c in scored if not c]
        for g in good:
            for b in bad:
                n_pairs += 1
                hits += g > b
                ties += g == b
        if good and bad:
            n_mixed += 1
            exact += min(good) > max(bad)
        if judge:
            for r, c in scored:
                if r == 5:
                    five += 1
                    five_correct += c
        r_vec, c_vec = [r for r, _ in scored], [float(c) for _, c in scored]
        rho = _rank_corr(stats.spearmanr, r_vec, c_vec)
        tau = _rank_corr(lambda a, b: stats.kendalltau(a, b, variant="b"), r_vec, c_vec)
        if rho is not None:
            rhos.append(rho)
        if tau is not None:
            taus.append(tau)
    return {
        "pairwise_accuracy": hits / n_pairs if n_pairs else None,
        "pairwise_ties": ties / n_pairs if n_pairs else None,
        "n_verifiable_pairs": n_pairs,
        "exact_match": exact / n_mixed if n_mixed else None,
        "n_mixed_prompts": n_mixed,
        "five_best": five_correct / five if judge and five else None,
        "n_five": five if judge else None,
        "spearman": _mean(rhos),
        "kendall": _mean(taus),
        "n_rank_prompts": len(taus),
        "correctness_tau_hist": _histogram(taus),
    }


def judge_metrics(rows: Sequence[dict]) -> dict:
    """Parse-failure rate and the histogram of the parsed judgment scores (rows with ``judge_scores``)."""
    failures = sum(int(r.get("judge_failures", 0)) for r in rows)
    total = sum(int(r.get("judge_total", 0)) for r in rows)
    hist: dict[str, int] = {}
    for r in rows:
        for per_response in r["judge_scores"]:
            for s in per_response:
                key = "unparsed" if s is None else f"{s:g}"
                hist[key] = hist.get(key, 0) + 1
    forced = sum(x is not None for r in rows for x in r.get("judge_forced") or [])
    return {"parse_failure_rate": failures / total if total else None, "n_judgments": total,
            "score_hist": dict(sorted(hist.items())), "n_forced": forced}


def reward_quality(paths: RunPaths, t: int, pairs: Sequence[dict] | None = None,
                   dropped: Sequence[str] = ()) -> dict | None:
    """All the metrics of iteration t, or None when it has no labels.jsonl."""
    labels_path = paths.labels(t)
    if not labels_path.exists():
        return None
    samples = artifacts.read_jsonl(paths.samples(t))
    rows = artifacts.read_jsonl(paths.rewards(t))
    ok = correctness(samples, artifacts.read_jsonl(labels_path))
    rows = [r for r in rows if r["prompt_id"] in ok]
    judge = bool(rows) and all("judge_scores" in r for r in rows)
    out = ranking_metrics([r["reward"] for r in rows], [ok[r["prompt_id"]] for r in rows], judge=judge)
    n_resp = sum(len(v) for v in ok.values())
    out["response_accuracy"] = sum(sum(v) for v in ok.values()) / n_resp if n_resp else None
    if judge:
        out |= judge_metrics(rows)
    else:
        out |= {"parse_failure_rate": None, "score_hist": None}
    n = len(rows)
    out["n_prompts"], out["n_dropped"] = n, len(dropped)
    out["dropped_rate"] = len(dropped) / n if n else None
    pairs = list(pairs or [])
    out["chosen_chars"] = _mean([len(p["chosen"]) for p in pairs])
    out["rejected_chars"] = _mean([len(p["rejected"]) for p in pairs])
    out["chosen_longer"] = _mean([float(len(p["chosen"]) > len(p["rejected"])) for p in pairs])
    known = [p for p in pairs if p["prompt_id"] in ok and "chosen_index" in p]
    out["chosen_correct"] = _mean([float(ok[p["prompt_id"]][p["chosen_index"]]) for p in known])
    out["rejected_correct"] = _mean([float(ok[p["prompt_id"]][p["rejected_index"]]) for p in known])
    cons_path = paths.consistency(t)
    taus = [r["tau"] for r in artifacts.read_jsonl(cons_path) if r.get("tau") is not None] if cons_path.exists() else []
    out["tau_hist"] = _histogram(taus)
    return out
