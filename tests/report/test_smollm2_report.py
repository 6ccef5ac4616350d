"""The SmolLM2 report page (experiments/smollm2/README.md) quotes cream-table and costs.py on the committed runs
(experiments/smollm2/runs/): each quoted block must be exactly what the tools print today, so a table cannot go
stale when a run is added or a summary changes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, run_script
from cream import cli

PAGE = ROOT / "experiments" / "smollm2" / "README.md"


def _quoted_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"^```text\n(.*?)^```$", PAGE.read_text(), flags=re.S | re.M)]


@pytest.mark.parametrize("metric", ["acc_norm", "lenient"])
def test_the_page_quotes_cream_table_on_the_committed_runs(metric, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the table names run dirs relative to where it ran, as the page's command does
    assert cli.table(["experiments/smollm2/runs", "--metric", metric, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip()
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
    lines = _script("drift").main([run]).splitlines()
    chars = sum(len(o) for o, _ in outputs) / 4
    assert lines[2] == f"| cream_s0 | M0 | C 50% | 25% | 25% | {chars:.0f} |  |"
    assert lines[3] == f"| cream_s0 | M1 | C 50% | 25% | 25% | {chars:.0f} | 2 / 1 of 4 |"
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
