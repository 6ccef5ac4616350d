"""The time a stage took over all its attempts, when kills made it run in pieces.

A killed stage resumes from what it saved (samples, log-probs, evaluation parts, training checkpoints), so the
attempt that completes it computes only the rest, and its ``seconds`` are a part of the stage's cost. Each attempt
therefore keeps a record in the stage's hidden ``.attempts/<n>.json``, rewritten every ``interval`` seconds by a
daemon thread while the stage runs: when it started, its seconds so far and its peak RSS so far. A SIGKILL ends
the thread with the process, so a killed attempt's record is at most ``interval`` seconds short, and it includes the
work the kill lost (computed after the last saved piece). The attempt that completes the stage adds the records
of the earlier ones to its manifest (``earlier_attempts``) and removes the folder.
"""
from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from cream import artifacts
from cream.report.memory import peaks

FOLDER = ".attempts"
INTERVAL = 30.0  # seconds between two records of a running attempt


class Attempt:
    """``with Attempt(stage_folder) as attempt: ...`` around one attempt at a stage (rank 0's process)."""

    def __init__(self, folder: Path, interval: float = INTERVAL):
        self.dir = Path(folder) / FOLDER
        self.earlier = [artifacts.read_json(p) for p in sorted(self.dir.glob("*.json"), key=lambda p: int(p.stem))]
        self.path = self.dir / f"{len(self.earlier) + 1}.json"
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _write(self) -> None:
        artifacts.write_json(self.path, {"started": self.started, "seconds": round(time.perf_counter() - self._t0, 3),
                                         "peak_rss_mb": peaks()["peak_rss_mb"]})

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._write()

    def __enter__(self) -> Attempt:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.started, self._t0 = datetime.now(UTC).isoformat(timespec="seconds"), time.perf_counter()
        self._write()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:  # a failed attempt counts too: its time is spent, and the rerun goes on from what it saved
            self._write()

    def summary(self) -> dict | None:
        """The earlier attempts: how many, their seconds in all, and the largest of their peaks (None if none)."""
        if not self.earlier:
            return None
        return {"count": len(self.earlier), "seconds": round(sum(a["seconds"] for a in self.earlier), 3),
                "peak_rss_mb": max(a["peak_rss_mb"] for a in self.earlier)}
