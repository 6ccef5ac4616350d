"""Resume and invalidation with fake stages through ``pipeline.run``: what reruns when an upstream output
changes, what ``pipeline.on_config_change=redo`` keeps in ``_stale/``, and a half-written training stage
(killed by ``CREAM_FAULT`` at a known step) going on from its checkpoint."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose

CALLS: list[str] = []   # the fake stages that ran, in order
VALUE = {"up": "first"}  # what the fake upstream stage writes


def _up(ctx, out: Path) -> dict:
    CALLS.append("up")
    (out / "value.txt").write_text(VALUE["up"])
    return {}


def _down(ctx, out: Path) -> dict:
    CALLS.append("down")
    (out / "copy.txt").write_text((ctx.run_dir / "up" / "value.txt").read_text().upper())
    return {}


@pytest.fixture
def fake_pipeline(monkeypatch, tmp_path):
    """pipeline.run over two fake stages, up -> down, whose config is ``seed``; returns run(*overrides)."""
    from cream import pipeline

    def plan(ctx):
        keys = {"seed": ctx.cfg.seed}
        return [pipeline.Stage("up", _up, [], keys), pipeline.Stage("down", _down, ["up"], keys)]

    monkeypatch.setattr(pipeline, "plan", plan)
    CALLS.clear()
    VALUE["up"] = "first"
    run_dir = tmp_path / "run"

    def run(*overrides: str) -> list[str]:
        CALLS.clear()
        pipeline.run(compose(["debug=smoke", *overrides]), run_dir)
        return list(CALLS)
    run.dir = run_dir
    return run


def test_rerun_skips_finished_stages(fake_pipeline):
    assert fake_pipeline() == ["up", "down"]
    assert fake_pipeline() == []
    assert (fake_pipeline.dir / "down" / "copy.txt").read_text() == "FIRST"
    timings = json.loads((fake_pipeline.dir / "timings.json").read_text())
    assert set(timings) == {"up", "down"}


def test_an_upstream_output_that_changed_makes_downstream_rerun(fake_pipeline):
    fake_pipeline()
    (fake_pipeline.dir / "up" / "manifest.json").unlink()  # up is redone, and now writes something else
    VALUE["up"] = "second"
    assert fake_pipeline() == ["up", "down"]
    assert (fake_pipeline.dir / "down" / "copy.txt").read_text() == "SECOND"
    # the same output again: its digest is unchanged, so down is not redone
    (fake_pipeline.dir / "up" / "manifest.json").unlink()
    assert fake_pipeline() == ["up"]


def test_an_output_changed_on_disk_is_recomputed(fake_pipeline):
    fake_pipeline()
    (fake_pipeline.dir / "up" / "value.txt").write_text("edited by hand")  # another size
    VALUE["up"] = "third"
    assert fake_pipeline() == ["up", "down"]
    assert (fake_pipeline.dir / "down" / "copy.txt").read_text() == "THIRD"


def test_another_config_is_refused_then_redone_into_stale(fake_pipeline, monkeypatch):
    import time

    from cream.errors import ConfigChanged

    monkeypatch.setattr(time, "strftime", lambda fmt, *t: "20260101-000000")  # every redo within the same second

    fake_pipeline("seed=0")
    with pytest.raises(ConfigChanged, match="seed: 0 -> 1"):
        fake_pipeline("seed=1")
    assert not (fake_pipeline.dir / "_stale").exists()
    # two redos in the same second: each keeps the outputs it replaced, side by side
    VALUE["up"] = "seed one"
    assert fake_pipeline("seed=1", "pipeline.on_config_change=redo") == ["up", "down"]
    VALUE["up"] = "seed two"
    assert fake_pipeline("seed=2", "pipeline.on_config_change=redo") == ["up", "down"]
    stale = fake_pipeline.dir / "_stale"
    kept = sorted(p.relative_to(stale).as_posix() for p in stale.rglob("*.txt"))
    assert len(kept) == 4, kept  # up and down from seed 0 and from seed 1
    assert all(k.count("/") == 1 for k in kept), f"an archive nested inside another: {kept}"
    texts = sorted(p.read_text() for p in stale.rglob("*.txt"))
    assert texts == sorted(["first", "FIRST", "seed one", "SEED ONE"])
    assert (fake_pipeline.dir / "down" / "copy.txt").read_text() == "SEED TWO"


# A fake base (the tiny model copied into base/model) and the real SFT stage, run in a child process that
# CREAM_FAULT kills after SFT's third optimizer step; the same command run again must go on from there.
SCRIPT = """
import shutil, sys
from conftest import compose
from cream import pipeline
from cream.stages import sft

def base(ctx, out):
    shutil.copytree(sys.argv[2], out / "model")
    return {}

pipeline.plan = lambda ctx: [pipeline.Stage("base", base, [], {}),
                             pipeline.Stage("sft", sft.run, ["base"], {"seed": ctx.cfg.seed})]
pipeline.run(compose(["debug=smoke", "sft.epochs=1", "sft.batch_size=2", "data.n_seed=10",
                      "trainer.cream.checkpoint_every_n_steps=1"]), pipeline.Path(sys.argv[1]))
"""


def _steps(path: Path) -> list[int]:
    with path.open(newline="") as f:
        return sorted({int(r["step"]) for r in csv.DictReader(f) if r.get("step") and r.get("train/loss")})


def test_a_killed_training_stage_resumes_from_its_checkpoint(tmp_path, tiny_dir):
    run_dir = tmp_path / "run"
    (tmp_path / "child.py").write_text(SCRIPT)
    env = {**os.environ, "CREAM_FAULT": "sft:step=3:SIGKILL", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(tmp_path / "child.py"), str(run_dir), str(tiny_dir)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == -9, first.stderr[-3000:]  # SIGKILL, by the fault
    sft = run_dir / "sft"
    assert (sft / ".fault_fired").exists() and (sft / ".inprogress.json").exists()
    assert (sft / "checkpoints" / "last.ckpt").exists() and not (sft / "manifest.json").exists()
    base_manifest = (run_dir / "base" / "manifest.json").stat().st_mtime_ns
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # same env: fires once
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run_dir / "base" / "manifest.json").stat().st_mtime_ns == base_manifest  # not recomputed
    assert json.loads((sft / "manifest.json").read_text())["summary"]["steps"] == 5
    # the first attempt logged steps 0, 1, 2; the resumed one starts at step 3 (from scratch it would log 0..4)
    assert _steps(sft / "logs" / "metrics.attempt1.csv") == [0, 1, 2]
    assert _steps(sft / "logs" / "metrics.csv") == [3, 4]
