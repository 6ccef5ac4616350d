"""A stage attempt's record (``cream.report.attempts``): rewritten while the attempt runs, so a SIGKILL, which
lets nothing run at exit, leaves its time up to one interval short; the attempt that completes reads them all."""
import json
import time

import pytest

from conftest import ROOT, run_script
from cream.report.attempts import Attempt


def _killed(folder, seconds: float) -> tuple[dict, float]:
    """An attempt that runs ``seconds`` and then dies without leaving its ``with`` (as under SIGKILL): the record
    it left, and how long it really ran."""
    t0 = time.perf_counter()
    attempt = Attempt(folder, interval=0.05).__enter__()
    time.sleep(seconds)
    attempt._stop.set()  # the process is gone: no more records, and no last one at exit
    ran = time.perf_counter() - t0
    attempt._thread.join()
    return json.loads(attempt.path.read_text()), ran


def test_killed_attempts_leave_their_time_and_the_completing_one_adds_them_up(tmp_path):
    first, ran = _killed(tmp_path, 0.4)
    assert ran - 0.15 <= first["seconds"] <= ran and first["peak_rss_mb"] > 0  # about one interval short at most
    second, ran = _killed(tmp_path, 0.2)
    assert ran - 0.15 <= second["seconds"] <= ran
    assert [p.name for p in sorted((tmp_path / ".attempts").glob("*.json"))] == ["1.json", "2.json"]
    with Attempt(tmp_path, interval=0.05) as last:
        assert last.path.name == "3.json" and last.path.exists()  # recorded from its start
    assert last.summary() == {"count": 2, "seconds": round(first["seconds"] + second["seconds"], 3),
                              "peak_rss_mb": max(first["peak_rss_mb"], second["peak_rss_mb"])}
    assert not (tmp_path / ".attempts").exists()  # the stage is complete: nothing left to add


def test_a_failed_attempt_records_its_whole_time(tmp_path):
    with pytest.raises(RuntimeError), Attempt(tmp_path, interval=60):  # no record between start and the failure
        time.sleep(0.2)
        raise RuntimeError("the stage failed")
    assert json.loads((tmp_path / ".attempts" / "1.json").read_text())["seconds"] >= 0.2
    assert Attempt(tmp_path).summary()["count"] == 1


def test_a_stage_run_at_once_has_no_earlier_attempts(tmp_path):
    with Attempt(tmp_path) as attempt:
        pass
    assert attempt.summary() is None and not (tmp_path / ".attempts").exists()


def test_costs_show_a_stage_run_in_pieces_with_all_its_attempts(tmp_path):
    for run, earlier in (("one_go", None), ("pieces", {"count": 2, "seconds": 1500.0, "peak_rss_mb": 4096.0})):
        (tmp_path / run).mkdir()
        record = {"seconds": 300.0, "ran": True, "peak_rss_mb": 2048.0}
        timings = {"sample": record, "reward": dict(record, earlier_attempts=earlier) if earlier else record}
        (tmp_path / run / "timings.json").write_text(json.dumps(timings))
    rows = run_script(ROOT / "experiments" / "smollm2" / "costs.py").main(tmp_path).splitlines()
    assert rows[2] == "| sample | 5.0 min, 2.0 GB |  |"  # the same figures: a copy, shown once
    assert rows[3] == "| reward | 5.0 min, 2.0 GB | 30.0 min, 4.0 GB (3 attempts) |"
    assert rows[-1] == "| **total (stages computed)** | 10 min | 30 min |"
