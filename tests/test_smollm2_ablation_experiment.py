"""The SmolLM2 ablation study's files (conf/experiment/smollm2_ablation_*.yaml, experiments/smollm2_ablation/*.sh)
on a tiny budget: the selection on the dev split, then every arm of one seed through run.sh, with the stage copies
the plan declares (experiments/smollm2_ablation/PLAN.md). The tiny model stands in for SmolLM2 in both: what is
checked here (which runs the scripts make, which stages they copy, which split they read, the weights each arm
trains with, the choice the selection prints) does not depend on the model, and the real model costs minutes per
run. SmolLM2 itself runs the pipeline in tests/test_real_model.py and tests/test_smollm2_experiment.py."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose, read_results, run_script

pytestmark = pytest.mark.slow

HERE = ROOT / "experiments" / "smollm2_ablation"
# 12-token responses are all cut at the limit: dropping them (the controls' drop_truncated) would leave no pair
TINY_BUDGET = ("data.allow_sample=true data.n_seed=8 data.n_prompts=4 sampling.n=3 "
               "sampling.max_new_tokens=12 sft.epochs=1 dpo.epochs=1 eval.limit=6 eval.generate_limit=3 "
               "eval.max_new_tokens=12")
ARMS = ["a_srlm", "b_cream", "c_cream_controls", "d_srlm_controls", "e_fixed_c"]
TINY_MODEL = "model=tiny trainer=cpu trainer.devices=1 "


def _env(overrides: str) -> dict:
    return {**os.environ, "CREAM_TRAIN": str(Path(sys.executable).parent / "cream-train"),
            "CREAM_PYTHON": sys.executable, "CREAM_OVERRIDES": overrides}


def _script(name: str, *args: str, overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(HERE / name), "null", *args], capture_output=True, text=True, env=_env(overrides),
                          timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _skipped(run: Path) -> set[str]:
    log = "".join(p.read_text() for p in run.glob("*.log"))  # Hydra's job log
    return set(re.findall(r"\[([\w/]+)\] complete, skipped", log))


def _dpo(run: Path, t: int) -> dict:
    return json.loads((run / f"iter_{t}" / "dpo" / "manifest.json").read_text())["summary"]


def test_the_arms_differ_where_the_plan_says():
    common = ["sft.lr=1e-5", "dpo.lr=1e-5"]
    arms = {a: compose([f"experiment=smollm2_ablation_{a}", *common]) for a in ARMS}
    assert arms["c_cream_controls"].reward.length == "per_token" and arms["c_cream_controls"].regularizer.min_c == 0.5
    for x, y in (("b_cream", "a_srlm"), ("c_cream_controls", "d_srlm_controls"), ("e_fixed_c", "c_cream_controls")):
        arms[x].regularizer = arms[y].regularizer  # the one difference of each contrast
        assert arms[x] == arms[y], (x, y)
    assert arms["d_srlm_controls"].reward != arms["a_srlm"].reward  # D is not A: the controls change its pairs


def test_selection_on_the_dev_split(tmp_path):
    out = _script("select.sh", str(tmp_path), overrides=TINY_MODEL + TINY_BUDGET).stdout.strip().splitlines()
    sft_line = [line for line in out if line.startswith("sft.lr=")][-1]
    assert sft_line in ("sft.lr=1e-5", "sft.lr=3e-6") and out[-1] in ("dpo.lr=1e-6", "dpo.lr=3e-6", "dpo.lr=1e-5")
    assert out[-6].startswith("| dpo.lr | M1 acc_norm (se)")
    sft = sft_line.split("=")[1]
    runs = {p.name for p in (tmp_path / "select").iterdir()}
    assert runs == {"sft1e-5_dpo1e-6", "sft3e-6_dpo1e-6", f"sft{sft}_dpo3e-6", f"sft{sft}_dpo1e-5"}
    for run in runs:
        rows = read_results(tmp_path / "select" / run)
        assert [r["model"] for r in rows] == ["M0", "M1", "M2"]
    # the dev split, not the test split: the questions are ARC-Easy-Dev's first six
    dev = [json.loads(line)["id"] for line in (ROOT / "cream" / "data" / "sample" / "arc_easy" / "ARC-Easy-Dev.jsonl")
           .read_text().splitlines()[:6]]
    got = [json.loads(p)["id"] for p in (tmp_path / "select" / "sft1e-5_dpo1e-6" / "eval" / "M0"
                                         / "predictions_loglik.jsonl").read_text().splitlines()]
    assert got == dev
    assert {"base", "eval/M0"} <= _skipped(tmp_path / "select" / "sft3e-6_dpo1e-6")  # copied: only SFT differs
    assert "iter_1/pairs" in _skipped(tmp_path / "select" / f"sft{sft}_dpo1e-5")  # copied: only the DPO lr differs
    assert "sft" not in _skipped(tmp_path / "select" / "sft3e-6_dpo1e-6")


def test_every_arm_through_run_sh(tmp_path):
    overrides = (TINY_MODEL + TINY_BUDGET
                 + " pipeline.iterations=2 sft.lr=1e-5 dpo.lr=1e-5 reward.drop_truncated=false")
    _script("run.sh", str(tmp_path), "a,b,c", "0", overrides=overrides)
    _script("run.sh", str(tmp_path), "d", "0", overrides=overrides)
    e = _script("run.sh", str(tmp_path), "e", "0", overrides=overrides)
    runs = {a: tmp_path / f"{a}_s0" for a in ARMS}
    for arm, run in runs.items():
        assert [r["model"] for r in read_results(run)] == ["M0", "M1", "M2", "M3"], arm
    upto_pairs = {"base", "eval/M0", "sft", "eval/M1", "iter_1/sample", "iter_1/reward", "iter_1/consistency",
                  "iter_1/pairs"}
    assert upto_pairs <= _skipped(runs["b_cream"])  # B from A
    assert {"base", "eval/M0", "sft", "eval/M1", "iter_1/sample"} <= _skipped(runs["c_cream_controls"])  # C from A
    assert "iter_1/pairs" not in _skipped(runs["c_cream_controls"])  # the per-token reward changes its pairs
    assert upto_pairs <= _skipped(runs["d_srlm_controls"]) and upto_pairs <= _skipped(runs["e_fixed_c"])  # D, E from C
    # the DPO weights: plain DPO for A and D; B weighted by C at t = 1; C and E plain DPO at t = 1 (skip)
    b_rows = read_results(runs["b_cream"])
    assert _dpo(runs["a_srlm"], 1)["mean_weight"] == _dpo(runs["d_srlm_controls"], 1)["mean_weight"] == 1.0
    assert _dpo(runs["b_cream"], 1)["mean_weight"] == pytest.approx(b_rows[2]["consistency"]["mean"])
    assert _dpo(runs["c_cream_controls"], 1)["mean_weight"] == _dpo(runs["e_fixed_c"], 1)["mean_weight"] == 1.0
    c_t2 = _dpo(runs["c_cream_controls"], 2)["mean_weight"]
    c_rows = read_results(runs["c_cream_controls"])
    assert c_t2 == pytest.approx(max(c_rows[3]["consistency"]["mean"], 0.5))  # the floor min_c = 0.5
    assert f"regularizer.c={round(c_t2, 3):.3f}" in e.stdout
    assert _dpo(runs["e_fixed_c"], 2)["mean_weight"] == pytest.approx(round(c_t2, 3))
    # C, D and E train the same step at t = 1 (C = 1 in all three): the same M2
    for other in ("d_srlm_controls", "e_fixed_c"):
        rows = read_results(runs[other])
        assert c_rows[2]["eval_acc_norm"] == rows[2]["eval_acc_norm"] and c_rows[2]["eval"] == rows[2]["eval"], other
    assert "diagnostics" in c_rows[2] and "auc_c" in c_rows[2]["diagnostics"]
    # the analyses read these run dirs: one paired row per contrast and quantity with values
    analysis = run_script(HERE / "analysis.py")
    paired = analysis.paired(tmp_path)
    assert "| B - A (primary) | C, t = 2 | s0 " in paired and "| C - D (primary) | C, t = 2 | s0 " in paired
    assert "| C - A (descriptive) | C, t = 2 | s0 " in paired and "| C - B (descriptive) | C, t = 2 | s0 " in paired
    # collect.sh keeps the per-question predictions: the McNemar tests read the committed copies alone
    copy = tmp_path / "committed"
    proc = subprocess.run([str(HERE / "collect.sh"), str(tmp_path), str(copy)], capture_output=True, text=True,
                          env=_env(""), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from_runs = analysis.questions(tmp_path, final="M3").splitlines()
    assert len(from_runs) == 2 + 6 and analysis.questions(copy / "runs", final="M3").splitlines() == from_runs
    eval_dir = copy / "runs" / "a_srlm_s0" / "eval"
    assert sorted(p.name for p in eval_dir.iterdir()) == ["M0", "M1", "M2", "M3"]
    assert [p.parent.name for p in eval_dir.glob("*/predictions_loglik.jsonl")] == ["M3"]
    # ... and every model's generative answers: what analysis.py answers prints is the same from either
    answers = analysis.answers(tmp_path).splitlines()
    assert len(answers) == 2 + 4 * len(ARMS) and analysis.answers(copy / "runs").splitlines() == answers
