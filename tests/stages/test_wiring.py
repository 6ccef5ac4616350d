"""The stages wired together on a small run dir of hand-made files, through their public ``run`` functions
and the files they write: rewards -> consistency -> pairs -> the DPO weights of each regularizer, and the
evaluation's acc / acc_norm on items where the two disagree.

The expected values are computed here, independently (scipy's Kendall tau, plain max / min), from the
hand-made inputs; nothing is read back from the code under test to build them.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from scipy import stats

from conftest import compose

# Five responses per prompt.  None: the model could not score that response.
RESPONSES = ["carbon dioxide", "oxygen", "It is carbon dioxide. Answer: B", "neon", "helium helium"]
REWARDS = {
    #       M_t's reward                    M_{t-1}'s reward                 how the stages must treat it
    "p0": ([0.1, 0.9, -0.5, 0.3, 0.0], [0.2, 0.8, -0.1, 0.0, 0.5]),     # plain: C_0 from all five
    "p1": ([1.0, 0.0, 2.0, 3.0, -1.0], [-1.0, 3.0, 2.0, 0.0, 1.0]),     # rankings mostly reversed: C_1 low
    "p2": ([0.5, 0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]),       # M_t ties: no pair, C undefined
    # a missing previous reward (index 2) and a missing current one (index 1): C_3 from indices 0, 3, 4 only
    "p3": ([0.3, None, -1.0, 2.0, 1.0], [0.1, 0.4, None, 0.5, 0.7]),
    "p4": ([0.2, 0.4, 0.1, 0.6, 0.3], [0.7, 0.7, 0.7, 0.7, 0.7]),       # M_{t-1} ties: a pair, but C undefined
}


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _expected_c(now, prev) -> float | None:
    """(tau + 1) / 2 over the responses both models scored; None when either ranking is constant."""
    keep = [i for i, (a, b) in enumerate(zip(now, prev)) if a is not None and b is not None]
    a, b = [now[i] for i in keep], [prev[i] for i in keep]
    if len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return (stats.kendalltau(a, b).statistic + 1) / 2


EXPECTED_C = {pid: _expected_c(*r) for pid, r in REWARDS.items()}
DEFINED = [c for c in EXPECTED_C.values() if c is not None]
DATASET_C = sum(DEFINED) / len(DEFINED)


def _logp(pid: str, i: int) -> float:
    return -10.0 - int(pid[1:]) - i / 10  # M_t's log-prob of response i (distinct per response)


@pytest.fixture
def iteration(tmp_path, tiny_dir):
    """A run dir holding M1 (the tiny model), iteration 1's samples and rewards; returns a function that
    makes the pipeline's Context for extra overrides."""
    from cream.pipeline import Context

    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run / "sft" / "model")
    _write_jsonl(run / "iter_1" / "sample" / "samples.jsonl", (
        {"prompt_id": pid, "benchmark": "arc_easy", "instruction": f"question {pid}",
         "prompt": f"Question {pid}: which gas?",
         "responses": [f"{r} ({pid})" for r in RESPONSES], "finished": [True] * 5} for pid in REWARDS))
    _write_jsonl(run / "iter_1" / "reward" / "rewards.jsonl", (
        {"prompt_id": pid, "reward": now, "prev_reward": prev, "policy_logp": [_logp(pid, i) for i in range(5)],
         "n_tokens": [3] * 5} for pid, (now, prev) in REWARDS.items()))

    def context(*overrides: str) -> Context:
        cfg = compose(["debug=smoke", "dpo.batch_size=1", "dpo.epochs=1", "trainer.cream.checkpoint_every_n_steps=100",
                       *overrides])
        return Context(cfg, run)
    return context


def _consistency_and_pairs(ctx):
    from cream.stages import consistency, pairs

    for stage, fn in (("consistency", consistency.run), ("pairs", pairs.run)):
        out = ctx.run_dir / "iter_1" / stage
        out.mkdir(parents=True, exist_ok=True)
        fn(ctx, out, t=1)


def test_consistency_uses_only_responses_both_models_scored(iteration):
    ctx = iteration()
    _consistency_and_pairs(ctx)
    rows = {r["prompt_id"]: r for r in _read_jsonl(ctx.run_dir / "iter_1" / "consistency" / "consistency.jsonl")}
    assert set(rows) == set(REWARDS)
    for pid, want in EXPECTED_C.items():
        if want is None:
            assert rows[pid]["c"] is None and rows[pid]["defined"] is False, pid
        else:
            assert rows[pid]["c"] == pytest.approx(want), pid
            assert rows[pid]["tau"] == pytest.approx(2 * want - 1) and rows[pid]["defined"] is True
    # p3's C is the tau of three responses (0, 3, 4): with the half-scored ones kept it could not be this
    assert EXPECTED_C["p3"] == pytest.approx((stats.kendalltau([0.3, 2.0, 1.0], [0.1, 0.5, 0.7]).statistic + 1) / 2)
    summary = json.loads((ctx.run_dir / "iter_1" / "consistency" / "summary.json").read_text())
    assert summary["mean"] == pytest.approx(DATASET_C)
    assert EXPECTED_C["p1"] < 0.5 < EXPECTED_C["p0"]  # the inputs do tell agreement from disagreement


def test_pairs_take_best_and_worst_of_the_current_model_in_their_slots(iteration):
    ctx = iteration()
    _consistency_and_pairs(ctx)
    pairs = {p["prompt_id"]: p for p in _read_jsonl(ctx.run_dir / "iter_1" / "pairs" / "pairs.jsonl")}
    assert set(pairs) == {"p0", "p1", "p3", "p4"}  # p2: M_t's rewards all tie
    for pid, p in pairs.items():
        now = REWARDS[pid][0]
        scored = [(r, i) for i, r in enumerate(now) if r is not None]
        best, worst = max(scored)[1], min(scored)[1]
        assert (p["chosen_index"], p["rejected_index"]) == (best, worst), pid
        assert p["chosen"] == f"{RESPONSES[best]} ({pid})" and p["rejected"] == f"{RESPONSES[worst]} ({pid})"
        assert p["reward_chosen"] == now[best] > p["reward_rejected"] == now[worst]
        # M_t is this iteration's DPO reference: its log-probs of the chosen and the rejected response
        assert (p["ref_logp_chosen"], p["ref_logp_rejected"]) == (_logp(pid, best), _logp(pid, worst))
        assert p["prompt"] == f"Question {pid}: which gas?"
        assert p["c"] == (None if EXPECTED_C[pid] is None else pytest.approx(EXPECTED_C[pid]))
    summary = json.loads((ctx.run_dir / "iter_1" / "pairs" / "summary.json").read_text())
    assert (summary["n_pairs"], summary["n_dropped"], summary["dropped"]) == (4, 1, ["p2"])


def _pair_c(pid: str) -> float:
    return DATASET_C if EXPECTED_C[pid] is None else EXPECTED_C[pid]  # cream_dyn: undefined C_j -> the mean


WEIGHT = {"none": lambda pid: 1.0, "cream_avg": lambda pid: DATASET_C, "cream_dyn": _pair_c, "fixed": lambda pid: 0.25}


@pytest.mark.parametrize("regularizer", list(WEIGHT))
def test_dpo_trains_each_pair_with_its_regularizers_weight(iteration, regularizer):
    """One pair per step: the logged ``train/consistency_weight`` of the steps is the multiset of weights."""
    from cream.stages import dpo

    ctx = iteration(f"regularizer={regularizer}", *(["regularizer.c=0.25"] if regularizer == "fixed" else []))
    _consistency_and_pairs(ctx)
    out = ctx.run_dir / "iter_1" / "dpo"
    out.mkdir(parents=True)
    summary = dpo.run(ctx, out, t=1)
    want = sorted(WEIGHT[regularizer](pid) for pid in ("p0", "p1", "p3", "p4"))
    assert len(set(want)) == (4 if regularizer == "cream_dyn" else 1)  # cream_dyn: four different weights
    log = [r for r in csv.DictReader((out / "logs" / "metrics.csv").open()) if r.get("train/consistency_weight")]
    assert sorted(float(r["train/consistency_weight"]) for r in log) == pytest.approx(want, abs=1e-6)
    assert summary["steps"] == 4 and summary["mean_weight"] == pytest.approx(sum(want) / 4)
    assert (ctx.run_dir / "iter_1" / "dpo" / "model" / "model.safetensors").is_file()  # M2


# Two-option questions: a one-letter option and a long one.  Summed log-likelihood (acc) favours the short
# option, per-character (acc_norm) the long one, so the two predictions differ on every item; the gold
# answer is the short option on half of them and the long one on the other half.
LONG = "the gas that plants take in from the air through their leaves during the day"
EVAL_ITEMS = [{"question": f"Question {i}: which one?", "choices": ["x", LONG] if i % 2 else [LONG, "x"],
               "answer": "A" if i < 3 else "B"} for i in range(6)]


def test_eval_records_acc_and_acc_norm_each_from_its_own_prediction(iteration, tmp_path):
    from cream.stages import evaluate

    _write_jsonl(tmp_path / "mine.jsonl", EVAL_ITEMS)
    ctx = iteration("eval.benchmarks=[]", f"+data.eval_files={{mine: {tmp_path / 'mine.jsonl'}}}",
                    "eval.modes=[loglik]", "eval.limit=null")
    out = ctx.run_dir / "eval" / "M1"
    out.mkdir(parents=True)
    evaluate.run(ctx, out, k=1)
    preds = _read_jsonl(out / "predictions_loglik.jsonl")
    assert len(preds) == 6
    acc, acc_norm = [], []
    for item, p in zip(EVAL_ITEMS, preds):
        ll = {o["label"]: o["loglik"] for o in p["options"]}
        chars = {o["label"]: len(o["continuation"].strip()) for o in p["options"]}
        by_acc = max(ll, key=ll.get)
        by_norm = max(ll, key=lambda k: ll[k] / chars[k])
        assert by_acc != by_norm  # the items do separate the two metrics
        assert p["acc"] == {"answer": by_acc, "correct": by_acc == item["answer"]}
        assert p["acc_norm"] == {"answer": by_norm, "correct": by_norm == item["answer"]}
        acc.append(by_acc == item["answer"])
        acc_norm.append(by_norm == item["answer"])
    result = json.loads((out / "result.json").read_text())
    assert result["eval_acc"]["mine"] == pytest.approx(sum(acc) / 6)
    assert result["eval_acc_norm"]["mine"] == pytest.approx(sum(acc_norm) / 6)
    assert result["eval_acc"]["mine"] != result["eval_acc_norm"]["mine"]
