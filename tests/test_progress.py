"""Progress off a terminal (cream/progress.py): one short line now and then, never a bar's carriage returns."""
from __future__ import annotations

import logging

import pytest

from cream import progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cream.progress"]


def test_a_line_at_a_10_percent_mark_30_s_after_the_last_or_60_s_in_any_case(caplog):
    caplog.set_level(logging.INFO, logger="cream.progress")
    clock = Clock()
    p = progress.Lines(None, "eval M2 arc_easy", 200, clock=clock)
    for step in range(1, 201):
        clock.t = step * 1.0  # 1 s per step: 20 steps per 10 %
        p.update(1)
    p.close()
    lines = _lines(caplog)
    # 10 % marks at 20, 40, ... s: a line at the first mark 30 s or more after the last one (40, 80, ... s)
    assert lines == ["eval M2 arc_easy: 40/200 (20%), 40s, 1.00 it/s",
                     "eval M2 arc_easy: 80/200 (40%), 1m20s, 1.00 it/s",
                     "eval M2 arc_easy: 120/200 (60%), 2m00s, 1.00 it/s",
                     "eval M2 arc_easy: 160/200 (80%), 2m40s, 1.00 it/s",
                     "eval M2 arc_easy: 200/200 (100%), 3m20s, 1.00 it/s"]


def test_slow_steps_print_every_60_s_without_a_total(caplog):
    caplog.set_level(logging.INFO, logger="cream.progress")
    clock = Clock()
    p = progress.Lines(None, "sample", None, clock=clock)
    for step in range(1, 6):
        clock.t = step * 25.0
        p.update(1)
    assert _lines(caplog) == ["sample: 3, 1m15s, 25.0 s/it"]


def test_short_loops_say_nothing(caplog):
    caplog.set_level(logging.INFO, logger="cream.progress")
    assert list(progress.Lines(range(5), "score")) == [0, 1, 2, 3, 4]
    assert _lines(caplog) == []


@pytest.mark.parametrize("env,tty,kind", [(None, False, "lines"), (None, True, "bar"), ("1", False, "bar"),
                                          ("0", True, "off"), ("0", False, "off")])
def test_what_tqdm_gives(monkeypatch, env, tty, kind):
    if env is None:
        monkeypatch.delenv("CREAM_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("CREAM_PROGRESS", env)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: tty)
    p = progress.tqdm(range(3), desc="x")
    got = "off" if isinstance(p, progress.Lines) and p.quiet else "lines" if isinstance(p, progress.Lines) else "bar"
    assert got == kind
    assert list(p) == [0, 1, 2]
    assert isinstance(progress.tqdm(range(3), desc="x", disable=True), progress.Lines)  # progress=False: silent


def test_stage_summary_line_fits_160_characters():
    from cream.pipeline import SUMMARY_LINE, _brief

    summary = {"extraction": "lenient",
               **{f"eval_{k}_avg": 0.25 for k in ("x", "lenient", "strict", "official", "acc")},
               **{f"eval_{k}_avg_stderr": 0.05 for k in ("x", "lenient")}, "eval_acc_norm_avg": 0.125}
    head = "[eval/M0] done in 61.5 s, peak RSS 660 MB"
    line = head + _brief(summary, SUMMARY_LINE - len(head))
    assert len(line) <= 160 and line.endswith(", ...") and "stderr" not in line
    assert _brief({"n": 3, "loss": 0.5}) == ": n=3, loss=0.5"
