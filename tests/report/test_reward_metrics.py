"""Reward-quality metrics against a verifiable ranking, checked against brute-force counts."""
from __future__ import annotations

import itertools
import random

import pytest
from scipy import stats

from cream import artifacts
from cream.paths import RunPaths
from cream.report.reward_metrics import correctness, judge_metrics, label_example, ranking_metrics, reward_quality


def brute(rewards, correct, judge=False):
    """Every metric by direct enumeration, written independently of the implementation."""
    pairs = hits = ties = mixed = exact = five = five_ok = 0
    rhos, taus = [], []
    for rs, cs in zip(rewards, correct):
        idx = [i for i in range(len(rs)) if rs[i] is not None]
        for i, j in itertools.permutations(idx, 2):
            if cs[i] and not cs[j]:
                pairs += 1
                hits += rs[i] > rs[j]
                ties += rs[i] == rs[j]
        if any(cs[i] for i in idx) and any(not cs[i] for i in idx):
            mixed += 1
            exact += all(rs[i] > rs[j] for i in idx for j in idx if cs[i] and not cs[j])
        five += sum(rs[i] == 5 for i in idx)
        five_ok += sum(rs[i] == 5 and cs[i] for i in idx)
        r, c = [rs[i] for i in idx], [int(cs[i]) for i in idx]
        if len(set(r)) > 1 and len(set(c)) > 1:
            rhos.append(stats.spearmanr(r, c).statistic)
            taus.append(stats.kendalltau(r, c).statistic)
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"pairwise_accuracy": hits / pairs if pairs else None, "pairwise_ties": ties / pairs if pairs else None,
            "n_verifiable_pairs": pairs, "exact_match": exact / mixed if mixed else None, "n_mixed_prompts": mixed,
            "five_best": (five_ok / five if five else None) if judge else None, "spearman": mean(rhos),
            "kendall": mean(taus), "n_rank_prompts": len(taus)}


def check(rewards, correct, judge=False):
    got, want = ranking_metrics(rewards, correct, judge=judge), brute(rewards, correct, judge)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
    return got


def test_hand_built_example():
    rewards = [[4, 2, 5, 1], [1, 1, 1, 1], [3, None, 0, 2], [5, 5, 0, 0]]
    correct = [[1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0]]
    m = check(rewards, correct, judge=True)
    # prompt 0: 4 (correct, wrong) pairs all right; prompt 1: 3 ties; prompt 2: (idx2 vs 0, 3) wrong x2
    # (idx1 unscored); prompt 3: 5 vs 5 tie, 5 vs 0 x2 right
    assert m["n_verifiable_pairs"] == 4 + 3 + 2 + 3
    assert m["pairwise_accuracy"] == pytest.approx((4 + 0 + 0 + 2) / 12)
    assert m["pairwise_ties"] == pytest.approx((3 + 1) / 12)
    assert m["exact_match"] == pytest.approx(1 / 4) and m["n_mixed_prompts"] == 4
    assert m["five_best"] == pytest.approx(2 / 3) and m["n_five"] == 3
    assert m["n_rank_prompts"] == 3  # prompt 1's rewards are constant
    assert sum(m["correctness_tau_hist"]["counts"]) == 3


def test_random_against_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        n_prompts, n = rng.randint(1, 5), rng.randint(2, 6)
        rewards = [[rng.choice([None, 0, 1, 2, 3, 4, 5, 2.5]) for _ in range(n)] for _ in range(n_prompts)]
        correct = [[rng.random() < 0.4 for _ in range(n)] for _ in range(n_prompts)]
        check(rewards, correct, judge=rng.random() < 0.5)


def test_no_verifiable_pairs_gives_none():
    m = check([[1, 2, 3]], [[0, 0, 0]])
    assert m["pairwise_accuracy"] is None and m["exact_match"] is None and m["kendall"] is None
    assert m["five_best"] is None  # not a judge


def test_label_example_and_correctness():
    mc = label_example("arc_easy", "q1", "B", "Which?\nA. oxygen\nB. carbon dioxide\nC. neon\nAnswer ...")
    assert mc.labels == ("A", "B", "C") and mc.is_multiple_choice
    num = label_example("gsm8k", "q2", "72", "How many?")
    assert not num.is_multiple_choice
    samples = [{"prompt_id": "q1", "benchmark": "arc_easy", "instruction": "Which?\nA. x\nB. y",
                "responses": ["Answer: B", "Answer: A", "B is right", "no idea"]},
               {"prompt_id": "q2", "benchmark": "gsm8k", "instruction": "How many?",
                "responses": ["24 + 48 = 72\nAnswer: 72", "Answer: 71", "#### 72.0"]},
               {"prompt_id": "q3", "benchmark": "arc_easy", "instruction": "?", "responses": ["Answer: A"]}]
    ok = correctness(samples, [{"prompt_id": "q1", "answer": "B"}, {"prompt_id": "q2", "answer": "72"}])
    assert ok == {"q1": [True, False, True, False], "q2": [True, False, True]}  # q3 has no label: left out


def test_judge_metrics():
    rows = [{"judge_scores": [[5.0, 4.0], [None, 3.5]], "judge_failures": 1, "judge_total": 4,
             "judge_forced": [None, None]},
            {"judge_scores": [[None, None], [5.0, 5.0]], "judge_failures": 2, "judge_total": 4,
             "judge_forced": [2.7, None]}]
    m = judge_metrics(rows)
    assert m["parse_failure_rate"] == pytest.approx(3 / 8) and m["n_judgments"] == 8 and m["n_forced"] == 1
    assert m["score_hist"] == {"3.5": 1, "4": 1, "5": 3, "unparsed": 3}


def test_reward_quality_from_files(tmp_path):
    paths = RunPaths(tmp_path)
    artifacts.write_jsonl(paths.samples(1), [
        {"prompt_id": "a", "benchmark": "arc_easy", "instruction": "Q\nA. x\nB. y", "prompt": "Q",
         "responses": ["Answer: A", "Answer: B", "Answer: B"]},
        {"prompt_id": "b", "benchmark": "arc_easy", "instruction": "Q\nA. x\nB. y", "prompt": "Q",
         "responses": ["Answer: A", "Answer: A", "Answer: A"]}])
    artifacts.write_jsonl(paths.labels(1), [{"prompt_id": "a", "answer": "A"}, {"prompt_id": "b", "answer": "B"}])
    artifacts.write_jsonl(paths.rewards(1), [
        {"prompt_id": "a", "reward": [5.0, 1.0, 2.0], "prev_reward": [1, 2, 3], "judge_scores": [[5.0], [1.0], [None]],
         "judge_failures": 1, "judge_total": 3},
        {"prompt_id": "b", "reward": [3.0, 3.0, 3.0], "prev_reward": [1, 2, 3], "judge_scores": [[3.0], [3.0], [3.0]],
         "judge_failures": 0, "judge_total": 3}])
    artifacts.write_jsonl(paths.consistency(1), [
        {"prompt_id": "a", "c": 0.0, "tau": -1.0, "defined": True},
        {"prompt_id": "b", "c": None, "tau": None, "defined": False}])
    pairs = [{"prompt_id": "a", "chosen": "Answer: A", "rejected": "Answer: B", "chosen_index": 0, "rejected_index": 1}]
    q = reward_quality(paths, 1, pairs, ["b"])
    assert q["pairwise_accuracy"] == 1.0 and q["exact_match"] == 1.0 and q["five_best"] == 1.0
    assert q["parse_failure_rate"] == pytest.approx(1 / 6) and q["score_hist"] == {"1": 1, "3": 3, "5": 1,
                                                                                   "unparsed": 1}
    assert q["n_dropped"] == 1 and q["dropped_rate"] == 0.5 and q["response_accuracy"] == pytest.approx(1 / 6)
    assert q["chosen_correct"] == 1.0 and q["rejected_correct"] == 0.0 and q["chosen_chars"] == 9.0
    assert q["tau_hist"]["counts"] == [1, 0, 0, 0]
    assert reward_quality(RunPaths(tmp_path / "nowhere"), 1) is None


def test_results_row_carries_reward_quality():
    from types import SimpleNamespace

    from cream.report.results import _row

    done = {"eval/M2": {"summary": {"eval": {"arc_easy": 0.5}}},
            "iter_1/pairs": {"summary": {"n_pairs": 3, "n_dropped": 1, "reward_quality": {"pairwise_accuracy": 0.75}}}}
    assert _row(SimpleNamespace(), 2, done)["reward_quality"] == {"pairwise_accuracy": 0.75}
    assert _row(SimpleNamespace(), 0, {"eval/M0": {"summary": {}}})["reward_quality"] is None
