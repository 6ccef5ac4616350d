"""cream/faults.py: CREAM_FAULT parsed, matched against a stage folder, fired once (SIGUSR1 to this process,
caught here, stands in for a kill)."""
from __future__ import annotations

import signal

import pytest

from cream import faults


@pytest.mark.parametrize("spec, want", [
    ("iter_1/dpo:step=3:SIGKILL", faults.Fault("iter_1/dpo", 3, "SIGKILL")),
    ("iter_1/reward:sigterm", faults.Fault("iter_1/reward", None, "SIGTERM")),
    ("0/sft:step=0:HANG", faults.Fault("0/sft", 0, "HANG")),
])
def test_parse(spec, want):
    assert faults.parse(spec) == want


@pytest.mark.parametrize("spec, message", [
    ("iter_1/dpo", "expected <stage>"),
    ("iter_1/dpo:step=x:SIGKILL", "expected <stage>"),
    ("iter_1/dpo:step=3:EXPLODE", "neither HANG nor a signal name"),
    (":SIGKILL", "no stage named"),
])
def test_bad_values_name_the_variable(spec, message):
    with pytest.raises(ValueError, match=f"CREAM_FAULT=.*{message}"):
        faults.parse(spec)


def test_matches_the_end_of_the_stage_folder(tmp_path):
    fault = faults.parse("0/sft:SIGKILL")
    assert fault.matches(tmp_path / "sweep" / "0" / "sft")
    assert not fault.matches(tmp_path / "sweep" / "10" / "sft") and not fault.matches(tmp_path / "sweep" / "0" / "dpo")


@pytest.fixture
def caught(monkeypatch):
    """SIGUSR1 recorded instead of acted on."""
    got = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    yield got
    signal.signal(signal.SIGUSR1, previous)


def test_stage_fault_fires_once_in_its_stage_only(tmp_path, monkeypatch, caught):
    monkeypatch.setenv("CREAM_FAULT", "iter_1/reward:SIGUSR1")
    faults.at_stage_start(tmp_path / "run" / "iter_1" / "sample")
    faults.at_stage_start(tmp_path / "run" / "iter_2" / "reward")
    assert caught == []
    folder = tmp_path / "run" / "iter_1" / "reward"
    faults.at_stage_start(folder)
    assert caught == [signal.SIGUSR1] and (folder / ".fault_fired").exists()
    faults.at_stage_start(folder)  # the rerun goes on past it
    assert caught == [signal.SIGUSR1]


def test_step_fault_fires_after_n_optimizer_steps(tmp_path, monkeypatch, caught):
    from types import SimpleNamespace

    monkeypatch.setenv("CREAM_FAULT", "iter_1/dpo:step=3:SIGUSR1")
    folder = tmp_path / "run" / "iter_1" / "dpo"
    faults.at_stage_start(folder)  # a step fault does not fire at the stage's start
    callback = faults.StepFault(folder)
    for step in range(3):
        callback.on_train_batch_start(SimpleNamespace(global_step=step), None, None, step)
    assert caught == []
    callback.on_train_batch_start(SimpleNamespace(global_step=3), None, None, 3)
    assert caught == [signal.SIGUSR1]
    callback.on_train_batch_start(SimpleNamespace(global_step=4), None, None, 4)  # once
    assert faults.StepFault(tmp_path / "run" / "sft").fault is None  # another stage: nothing armed
    assert caught == [signal.SIGUSR1]
