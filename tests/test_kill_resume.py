"""SIGKILL the pipeline inside a stage (at an exact point, by ``CREAM_FAULT``), rerun the same command: it
completes, the stages finished before the kill are not recomputed, a killed training stage goes on from its
checkpoint, and results.jsonl equals an uninterrupted run's (same seed, CPU)."""
import csv
import json
import signal
from pathlib import Path

import pytest

from conftest import read_results, run_cli, stage_mtimes

pytestmark = pytest.mark.slow

ARGS = ["debug=smoke", "dpo.batch_size=2", "trainer.cream.checkpoint_every_n_steps=1", "sampling.batch_size=4"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    run_cli([*ARGS, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    return read_results(run_dir)


def _steps(path: Path) -> list[int]:
    with path.open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("step") and r.get("train/loss")]


@pytest.mark.parametrize("fault", [
    "iter_1/sample:step=2:SIGKILL",  # after 2 of its 4 batches (16 prompts, 4 per batch) were saved
    "iter_1/reward:step=1:SIGKILL",  # after M1's log-probs were saved (M0's remain)
    "iter_1/dpo:step=2:SIGKILL",  # mid-epoch, after the checkpoint of step 2
    "eval/M2:SIGKILL",            # as the stage starts: its folder marked in progress, nothing written yet
    "eval/M2:step=1:SIGKILL",     # after its first part (one benchmark in one mode) was saved
])
def test_sigkill_then_rerun(reference, tmp_path, fault):
    stage = fault.split(":")[0]
    run_dir = tmp_path / "run"
    args, env = [*ARGS, f"hydra.run.dir={run_dir}"], {"CREAM_FAULT": fault}
    proc = run_cli(args, cwd=tmp_path, check=False, env=env)
    assert proc.returncode == -signal.SIGKILL, f"not killed by the fault ({proc.returncode}):\n{proc.stderr[-3000:]}"
    assert (run_dir / stage / ".fault_fired").exists() and not (run_dir / stage / "manifest.json").exists()
    finished = stage_mtimes(run_dir)
    assert finished, "no stage had finished before the kill"
    parts = run_dir / stage / ".parts"
    saved = sorted(p.name for p in parts.glob("*.json")) if stage.startswith("eval") else []
    assert len(saved) == (1 if "step=" in fault and stage.startswith("eval") else 0), saved
    pieces = parts / "rank0.jsonl"  # sample: batches; reward: models' log-probs
    n_pieces = len(pieces.read_text().splitlines()) if pieces.exists() else 0
    journaled = "step=" in fault and stage.endswith(("sample", "reward"))
    assert n_pieces == (int(fault.split("step=")[1].split(":")[0]) if journaled else 0)
    rerun = run_cli(args, cwd=tmp_path, env=env)  # the same command and environment: the fault has fired, once
    log = rerun.stdout + rerun.stderr
    for part in saved:  # read back, not computed again; the scratch is gone once the stage is complete
        mode, name = part.removesuffix(".json").split("-", 1)
        assert f"{mode} {name}: read from" in log
    if n_pieces and "sample" in stage:
        assert "sample M1: 2 of 4 batches read from" in log
    if n_pieces and "reward" in stage:
        assert "log-probs of M1: read from" in log and "log-probs of M0: read from" not in log
    assert not (run_dir / stage / ".parts").exists()
    after = stage_mtimes(run_dir)
    for name, mtime in finished.items():
        assert after[name] == mtime, f"{name} was recomputed"
    if "step=" in fault and "dpo" in stage:  # went on from the checkpoint of step 2, not from step 0
        logs = run_dir / stage / "logs"
        assert _steps(logs / "metrics.attempt1.csv") == [0, 1]
        assert _steps(logs / "metrics.csv")[0] == 2
    assert read_results(run_dir) == reference
    # every stage was computed in this run dir, before or after the kill: no record says otherwise
    timings = json.loads((run_dir / "timings.json").read_text())
    assert set(timings) == set(after) and all(t["ran"] for t in timings.values()), timings
    # the killed stage ran in two attempts, and its record says so (the others in one)
    assert {k for k, t in timings.items() if "earlier_attempts" in t} == {stage}
    assert timings[stage]["earlier_attempts"]["count"] == 1 and not (run_dir / stage / ".attempts").exists()
    killed, resumed = [json.loads(line) for line in (run_dir / "invocations.jsonl").read_text().splitlines()]
    assert (set(killed["ran"]), killed["finished"]) == (set(finished), False)
    assert (set(resumed["skipped"]), resumed["finished"]) == (set(finished), True)
