"""Progress of the long loops (scoring, sampling, evaluation, training steps).

On a terminal: tqdm bars.  Elsewhere (SLURM, CI, ``nohup ... > log``): one short line through the ``cream``
logger when a loop crosses a 10 % mark at least 30 s after its last line, or 60 s after it in any case,
and a last line when a loop that printed one ends::

    eval M2 arc_easy: 120/200 (60%), 1m30s, 1.33 it/s

``CREAM_PROGRESS=1`` forces bars, ``CREAM_PROGRESS=0`` silences both.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable

log = logging.getLogger("cream.progress")

MIN_INTERVAL, MAX_INTERVAL = 30.0, 60.0  # seconds between two lines: at a 10 % mark / in any case


def show_progress(wanted: bool = True) -> bool:
    """Whether a loop reports progress at all: ``CREAM_PROGRESS=0`` off, otherwise ``wanted`` (a bar on a
    terminal, lines elsewhere: :func:`tqdm` picks)."""
    return wanted and os.environ.get("CREAM_PROGRESS") != "0"


def bars() -> bool:
    """Progress as tqdm bars (a terminal, or ``CREAM_PROGRESS=1``) rather than log lines."""
    env = os.environ.get("CREAM_PROGRESS")
    return env == "1" if env is not None else sys.stderr.isatty()


def tqdm(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None,
         disable: bool = False, **kwargs):
    """A drop-in for ``tqdm.auto.tqdm``: a bar on a terminal, :class:`Lines` elsewhere, nothing when disabled."""
    if disable or not show_progress():
        return Lines(iterable, desc, total, quiet=True)
    if bars():
        from tqdm.auto import tqdm as bar

        return bar(iterable, desc=desc, total=total, **kwargs)
    return Lines(iterable, desc, total)


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Lines:
    """Counts steps and logs ``DESC: STEP/TOTAL (PCT), ELAPSED, RATE`` now and then (module docstring)."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None, *,
                 quiet: bool = False, clock=time.monotonic):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.total, self.quiet, self.clock = iterable, desc, total, quiet, clock
        self.n, self.start = 0, clock()
        self.last, self.mark, self.printed = self.start, 0, 0

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        elapsed = self.clock() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total} ({100 * self.n // self.total}%)" if self.total else f"{self.n}"
        speed = f"{rate:.2f} it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/it"
        return f"{self.desc}: {done}, {_duration(elapsed)}, {speed}"

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.quiet:
            return
        now = self.clock()
        mark = 10 * self.n // self.total if self.total else self.mark
        since = now - self.last
        if (mark > self.mark and since >= MIN_INTERVAL) or since >= MAX_INTERVAL:
            self._emit(now)
        self.mark = max(self.mark, mark)

    def _emit(self, now: float) -> None:
        log.info("%s", self.line())
        self.last, self.printed = now, self.printed + 1

    def close(self) -> None:
        if not self.quiet and self.printed and self.n and self.last != self.clock():
            self._emit(self.clock())
        self.quiet = True  # closed: nothing more

    def set_postfix(self, *args, **kwargs) -> None:  # the tqdm methods the call sites may use
        pass

    def set_description(self, desc: str, *args, **kwargs) -> None:
        self.desc = desc


def step_lines(desc: str):
    """Lightning callbacks for the training steps: :class:`Lines` when progress is wanted and not on a
    terminal (there Lightning's own bar shows, ``enable_progress_bar=bars()``); none otherwise."""
    if not show_progress() or bars():
        return []
    from lightning.pytorch.callbacks import Callback

    class StepLines(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            total = trainer.estimated_stepping_batches
            self.lines = Lines(None, desc, int(total) if total and total != float("inf") else None)
            self.lines.n = trainer.global_step  # a resumed stage counts from its checkpoint's step

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.lines.update(trainer.global_step - self.lines.n)

        def on_train_end(self, trainer, pl_module) -> None:
            self.lines.close()

    return [StepLines()]
