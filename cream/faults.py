"""Fault injection for tests: make a run stop itself at a named stage (and training step), exactly.

Set ``CREAM_FAULT=<stage>[:step=<n>]:<action>``:

    CREAM_FAULT=iter_1/dpo:step=3:SIGKILL     killed once iter_1/dpo has finished 3 optimizer steps
    CREAM_FAULT=iter_1/reward:SIGKILL         killed as iter_1/reward starts (its folder marked in progress)
    CREAM_FAULT=0/sft:step=2:HANG             waits (until a signal ends it) in the sft stage of a run dir
                                              named 0 (e.g. the first job of a sweep)

``<stage>`` matches the end of the stage's folder path (``iter_1/dpo``, or ``0/sft`` for the run dir
``.../0``).  ``step=n`` fires in a training stage at the start of the first batch after n optimizer steps
(so the checkpoint of step n, when one is due, is already written), in an evaluation stage before the
part (one benchmark in one mode) that follows n saved parts, and in a sample or reward stage once n pieces are
saved (sample: batches of ``generate`` or rows of the decode loop; reward: models' log-probs); without it the
fault fires before the stage's work begins.  ``<action>`` is a signal name the process sends itself
(``SIGKILL``, ``SIGTERM``, ``SIGUSR1``, ...) or ``HANG``.  Before it acts, the fault writes ``.fault_fired``
into the stage folder (a test waits for that file), and a folder holding one does not fire again: the rerun,
or the requeued job, with the same environment goes on past that point.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.callbacks import Callback

ENV = "CREAM_FAULT"
FIRED = ".fault_fired"


@dataclass(frozen=True)
class Fault:
    stage: str
    step: int | None
    action: str

    def matches(self, folder: Path) -> bool:
        return Path(folder).resolve().as_posix().endswith("/" + self.stage.strip("/"))


def parse(spec: str) -> Fault:
    """``<stage>[:step=<n>]:<action>`` -> Fault; a malformed value is an error naming the variable."""
    parts = spec.strip().split(":")
    step = None
    if len(parts) == 3 and parts[1].startswith("step=") and parts[1][5:].isdigit():
        step = int(parts[1][5:])
    elif len(parts) != 2:
        raise ValueError(f"{ENV}={spec!r}: expected <stage>[:step=<n>]:<action>, e.g. iter_1/dpo:step=3:SIGKILL")
    action = parts[-1].upper()
    if action != "HANG" and action not in signal.Signals.__members__:
        raise ValueError(f"{ENV}={spec!r}: the action {parts[-1]!r} is neither HANG nor a signal name such as SIGKILL")
    if not parts[0]:
        raise ValueError(f"{ENV}={spec!r}: no stage named")
    return Fault(parts[0], step, action)


def current() -> Fault | None:
    spec = os.environ.get(ENV, "")
    return parse(spec) if spec.strip() else None


def fire(fault: Fault, folder: Path) -> None:
    """Mark the folder, then act: signal this process, or hang until a signal ends it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FIRED).write_text(f"{fault}\n")
    if fault.action == "HANG":
        while True:  # (not a timing assumption: the test ends this process with a signal)
            time.sleep(0.1)
    os.kill(os.getpid(), signal.Signals[fault.action])


def _due(folder: Path, step: int | None) -> Fault | None:
    fault = current()
    if fault is None or fault.step != step or not fault.matches(folder) or (Path(folder) / FIRED).exists():
        return None
    return fault


def at_stage_start(folder: Path) -> None:
    """Called by the pipeline just before a stage's work begins."""
    fault = _due(folder, None)
    if fault is not None:
        fire(fault, folder)


def before_part(folder: Path, saved: int) -> None:
    """Called by an evaluation stage before it computes a part, ``saved`` parts being saved (by a sample or
    reward stage once a piece is saved, ``saved`` with it)."""
    fault = _due(folder, saved)
    if fault is not None:
        fire(fault, folder)


class StepFault(Callback):
    """In a training stage writing to ``folder``: fire a ``step=n`` fault once n optimizer steps are done."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        fault = current()
        self.fault = fault if fault is not None and fault.step is not None and fault.matches(self.folder) else None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.fault is not None and trainer.global_step >= self.fault.step and not (self.folder / FIRED).exists():
            fire(self.fault, self.folder)
