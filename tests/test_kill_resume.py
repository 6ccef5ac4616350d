"""SIGKILL the pipeline inside a stage, rerun the same command: it completes, the stages finished before
the kill are not recomputed, and results.jsonl equals an uninterrupted run's (same seed, CPU)."""
import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import read_results, run_cli, stage_mtimes, start_cli

pytestmark = pytest.mark.slow

# small batches so each targeted stage lasts long enough to be killed inside it
ARGS = ["debug=smoke", "sampling.batch_size=1", "rewarder.batch_size=1", "dpo.batch_size=2",
        "trainer.cream.checkpoint_every_n_steps=1", "eval.batch_size=2"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    run_cli([*ARGS, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    return read_results(run_dir)


def _inside(run_dir: Path, stage: str, need: str | None) -> bool:
    folder = run_dir / stage
    if not (folder / ".inprogress.json").exists():
        return False
    return need is None or (folder / need).exists()


@pytest.mark.parametrize("stage, need", [
    ("iter_1/sample", None),
    ("iter_1/reward", None),
    ("iter_1/dpo", "checkpoints/last.ckpt"),  # mid-epoch: at least one step checkpointed
    ("eval/M2", None),
])
def test_sigkill_then_rerun(reference, tmp_path, stage, need):
    run_dir = tmp_path / "run"
    proc = start_cli([*ARGS, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    deadline = time.time() + 300
    while not _inside(run_dir, stage, need):
        assert proc.poll() is None, f"finished before reaching {stage}:\n{proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"never reached {stage}"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / stage / "manifest.json").exists(), "the kill came too late: the stage had finished"
    finished = stage_mtimes(run_dir)
    assert finished, "no stage had finished before the kill"
    run_cli([*ARGS, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    after = stage_mtimes(run_dir)
    for name, mtime in finished.items():
        assert after[name] == mtime, f"{name} was recomputed"
    assert read_results(run_dir) == reference
    # every stage was computed in this run dir, before or after the kill: no record says otherwise
    timings = json.loads((run_dir / "timings.json").read_text())
    assert set(timings) == set(after) and all(t["ran"] for t in timings.values()), timings
    killed, resumed = [json.loads(line) for line in (run_dir / "invocations.jsonl").read_text().splitlines()]
    assert (set(killed["ran"]), killed["finished"]) == (set(finished), False)
    assert (set(resumed["skipped"]), resumed["finished"]) == (set(finished), True)
