"""All five benchmarks through the pipeline (data=mix), and cream-eval on a model dir from a run."""
import json
import math

import pytest

from conftest import read_results, run_cli

pytestmark = pytest.mark.slow
FIVE = {"arc_easy", "arc_challenge", "obqa", "siqa", "gsm8k"}


def test_mix_pipeline_and_cream_eval(tmp_path):
    run_dir = tmp_path / "mix"
    run_cli(["debug=smoke", "data=mix", "eval.limit=8", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    rows = read_results(run_dir)
    assert [r["model"] for r in rows] == ["M0", "M1", "M2"]
    for r in rows:
        assert set(r["eval"]) == FIVE
        # log-likelihood scoring: multiple choice only
        assert set(r["eval_acc"]) == set(r["eval_acc_norm"]) == FIVE - {"gsm8k"}
        assert set(r["eval_strict"]) == set(r["eval_official"]) == set(r["eval_stderr"]) == FIVE
        assert r["eval_avg"] == pytest.approx(sum(r["eval"].values()) / 5)
        assert r["eval_avg_stderr"] == pytest.approx(math.sqrt(sum(v * v for v in r["eval_stderr"].values())) / 5)
        for b, p in r["eval_acc_norm"].items():  # limit 8: 8 items per benchmark
            assert r["eval_acc_norm_stderr"][b] == pytest.approx(math.sqrt(p * (1 - p) / 7))
    # the SFT seed set and the prompt slice come from all five benchmarks
    samples = [json.loads(x) for x in (run_dir / "iter_1" / "sample" / "samples.jsonl").read_text().splitlines()]
    assert {s["benchmark"] for s in samples} == FIVE
    # cream-eval on M2's folder reproduces the pipeline's evaluation of M2
    out = tmp_path / "eval"
    proc = run_cli([f"model.name_or_path={run_dir / 'iter_1' / 'dpo' / 'model'}", "data=mix", "eval.limit=8",
                    f"out={out}"],
                   cwd=tmp_path, script="cream-eval")
    result = json.loads((out / "result.json").read_text())
    for key in ("eval", "eval_stderr", "eval_strict", "eval_official", "eval_acc", "eval_acc_norm",
                "eval_acc_norm_stderr"):
        assert result[key] == rows[2][key], key
    assert "gsm8k" in proc.stdout
