"""The SmolLM2 report page (experiments/smollm2/README.md) quotes cream-table and costs.py on the committed runs
(experiments/smollm2/runs/): each quoted block must be exactly what the tools print today, so a table cannot go
stale when a run is added or a summary changes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, cream_table_printed, run_script

PAGE = ROOT / "experiments" / "smollm2" / "README.md"


def _quoted_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"^```text\n(.*?)^```$", PAGE.read_text(), flags=re.S | re.M)]


@pytest.mark.parametrize("metric", ["acc_norm", "lenient"])
def test_the_page_quotes_cream_table_on_the_committed_runs(metric, tmp_path, capsys):
    printed = cream_table_printed("experiments/smollm2/runs", metric, tmp_path, capsys)
    assert printed.count("| M4 ") >= 1
    assert printed in _quoted_blocks(), f"README's cream-table --metric {metric} block differs from:\n{printed}"


def _script(name: str):
    return run_script(ROOT / "experiments" / "smollm2" / f"{name}.py")


def test_the_page_quotes_the_cost_table():
    printed = _script("costs").main(ROOT / "experiments" / "smollm2" / "runs").strip()
    assert printed.startswith("| stage |")
    assert printed in PAGE.read_text()


def _timings(path: Path, stages: dict[str, tuple[float, float]]) -> None:
    path.mkdir(parents=True)
    (path / "timings.json").write_text(json.dumps(
        {k: {"seconds": s, "ran": True, "peak_rss_mb": m, "peak_rss_scope": "stage"} for k, (s, m) in stages.items()}))


def test_costs_show_a_copied_stage_once(tmp_path):
    _timings(tmp_path / "cream_s0", {"sft": (120.0, 2048.0), "iter_1/dpo": (60.0, 1024.0)})
    _timings(tmp_path / "srlm_s0", {"sft": (120.0, 2048.0), "iter_1/dpo": (90.0, 3072.0)})  # sft: run.sh's copy
    lines = _script("costs").main(tmp_path).splitlines()
    assert lines[0] == "| stage | cream_s0 | srlm_s0 |"
    assert lines[2] == "| sft | 2.0 min, 2.0 GB |  |"
    assert lines[3] == "| iter_1/dpo | 1.0 min, 1.0 GB | 1.5 min, 3.0 GB |"
    assert lines[4] == "| **total (stages computed)** | 3 min | 2 min |"


def test_drift_counts_letters_loops_and_bare_samples(tmp_path):
    run = tmp_path / "cream_s0"
    outputs = [("Answer: C", "C"), ("Answer: C", "C"), ("x\nThe answer is y\nThe answer is y\nThe answer is y", None),
               ("Answer: A", "A")]
    for k in (0, 1):
        (run / "eval" / f"M{k}").mkdir(parents=True)
        (run / "eval" / f"M{k}" / "predictions.jsonl").write_text("".join(
            json.dumps({"mode": "generate", "output": o, "lenient": {"answer": a}}) + "\n" for o, a in outputs))
    (run / "iter_1" / "sample").mkdir(parents=True)
    (run / "iter_1" / "sample" / "samples.jsonl").write_text(json.dumps(
        {"responses": ["Answer: B", "Answer:", "Because B.\nAnswer: B", "a\na\na"]}) + "\n")
    (run / "iter_1" / "pairs").mkdir(parents=True)
    (run / "iter_1" / "pairs" / "pairs.jsonl").write_text("".join(
        json.dumps({"chosen": c, "rejected": r}) + "\n"
        for c, r in [("a\na\na", "Answer: B"), ("Because B.\nAnswer: B", "Answer:"),
                     ("Answer: B", "Because B.\nAnswer: B")]))
    lines = _script("drift").main([run]).splitlines()
    chars = sum(len(o) for o, _ in outputs) / 4
    assert lines[2] == f"| cream_s0 | M0 | C 50% | 25% | 25% | {chars:.0f} |  |  |"
    assert lines[3] == f"| cream_s0 | M1 | C 50% | 25% | 25% | {chars:.0f} | 2 / 1 of 4 | 1 of 3 / 1 / 0 |"
    assert len(lines) == 4


def test_the_page_quotes_the_dpo_steps():
    printed = _script("dpo_steps").main(ROOT / "experiments" / "smollm2" / "runs").strip()
    assert printed.count("\n") >= 2 and printed in PAGE.read_text()


def test_dpo_steps_read_each_iteration_manifest(tmp_path):
    for t, margin in ((1, -0.904), (2, 0.8)):
        path = tmp_path / "cream_s0" / f"iter_{t}" / "dpo"
        path.mkdir(parents=True)
        path.joinpath("manifest.json").write_text(json.dumps({"summary": {
            "mean_weight": 0.1391, "n_pairs": 64, "steps": 16, "train/loss": 0.4966, "train/rewards/chosen": -1.093,
            "train/rewards/rejected": -0.1909, "train/rewards/margins": margin, "train/rewards/accuracies": 0.125}}))
    lines = _script("dpo_steps").main(tmp_path).splitlines()
    assert lines[2] == "| cream_s0 | 1 | 0.139 | 64 | 16 | 0.497 | -1.09 | -0.19 | -0.90 | 0.12 |"
    assert lines[3].split(" | ")[1:2] == ["2"] and lines[3].split(" | ")[8] == "0.80"


def _summary(path: Path, values: dict[str, tuple[float, float, float | None]]) -> None:
    path.mkdir(parents=True)
    path.joinpath("results.jsonl").write_text("".join(json.dumps({
        "model": m, "eval_acc_norm_avg": acc, "eval_lenient_avg": lenient,
        "consistency": None if c is None else {"mean": c}}) + "\n" for m, (acc, lenient, c) in values.items()))


def test_paired_differences_per_seed_with_the_t_test(tmp_path):
    for seed, gain in ((0, 0.01), (1, 0.02), (2, 0.03)):  # CREAM - SRLM acc_norm at M4: +1, +2, +3 points
        base = {"M0": (0.4, 0.2, None), "M1": (0.44, 0.2, None), "M2": (0.44, 0.2, 0.2), "M3": (0.45, 0.2, 0.8)}
        _summary(tmp_path / f"srlm_s{seed}", {**base, "M4": (0.43, 0.1, 0.9)})
        _summary(tmp_path / f"cream_s{seed}", {**base, "M4": (0.43 + gain, 0.1 - gain, 0.9 - gain)})
    _summary(tmp_path / "cream_s3", {"M0": (0.4, 0.2, None)})  # incomplete and unpaired: left out
    lines = _script("paired").main(tmp_path).splitlines()
    assert lines[0] == "| quantity | model | s0 | s1 | s2 | mean | std | CREAM higher | p (paired t) |"
    # d = 1, 2, 3: mean 2, std 1, t = 2 / (1 / sqrt 3) = sqrt 12 on 2 df; two-sided p = 1 - t / sqrt(t^2 + 2)
    p = 1 - 12 ** 0.5 / 14 ** 0.5
    assert lines[4] == f"| acc_norm | M4 | +1.0 | +2.0 | +3.0 | +2.0 | 1.0 | 3 of 3 | {p:.2f} |"
    assert lines[2] == "| acc_norm | M2 | +0.0 | +0.0 | +0.0 | +0.0 | 0.0 | 0 of 3 | - |"
    assert lines[7] == f"| lenient | M4 | -1.0 | -2.0 | -3.0 | -2.0 | 1.0 | 0 of 3 | {p:.2f} |"
    assert lines[10] == f"| C | M4 | -0.010 | -0.020 | -0.030 | -0.020 | 0.010 | 0 of 3 | {p:.2f} |"


def test_the_page_quotes_the_paired_differences():
    printed = _script("paired").main(ROOT / "experiments" / "smollm2" / "runs").strip()
    assert printed.startswith("| quantity |") and printed in PAGE.read_text()


def test_per_question_counts_discordant_answers_with_mcnemar(tmp_path):
    # CREAM's M2 alone right on q0..q5, SRLM's alone on q6; both right on q7, both wrong on q8, q9
    cream = [True] * 6 + [False, True, False, False]
    srlm = [False] * 6 + [True, True, False, False]
    for run, correct in (("cream_s0", cream), ("srlm_s0", srlm)):
        path = tmp_path / run / "eval" / "M2"
        path.mkdir(parents=True)
        for name, key in (("predictions_loglik.jsonl", "acc_norm"), ("predictions.jsonl", "lenient")):
            path.joinpath(name).write_text("".join(
                json.dumps({"id": f"q{i}", key: {"correct": c if key == "acc_norm" else not c}}) + "\n"
                for i, c in enumerate(correct)))
    lines = _script("paired").per_question(tmp_path).splitlines()
    # exact McNemar: 6 of 7 discordant one way, two-sided p = 2 * (1 + 7) / 2^7 = 0.125
    assert lines[2] == "| s0 | M2 | 6 / 1 | 0.12 | 1 / 6 | 0.12 |"
    assert len(lines) == 3  # M3, M4 have no predictions: no row
