"""Start-up of the console scripts: this checkout against another revision, whole processes, interleaved.

    .venv/bin/python experiments/perf/startup.py [--base REV] [--reps R]

``--base`` (default ``HEAD``) is checked out into a temporary git worktree and imported from there
(``PYTHONPATH``), with the same interpreter and packages. Each command runs as it would from the shell:
``cream-table --help``, ``cream-plot --help``, and ``cream-train`` refused at composition (a misspelled key),
the path of every bad-input error. The two checkouts run in turn, R times each; the ratio is this checkout's
median over the base's. CPU is user + system of the finished child.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

COMMANDS = {  # name: (console script's function in cream.cli, its arguments)
    "cream-table --help": ("table", ["--help"]),
    "cream-plot --help": ("plot", ["--help"]),
    "cream-train dpo.num_train_epochs=2 (refused)": ("train", ["dpo.num_train_epochs=2"]),
}


def _run(checkout: Path, fn: str, args: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall s, cpu s, exit status) of one console script run imported from ``checkout``."""
    code = f"import sys; sys.argv[0] = 'cream'; from cream.cli import {fn}; sys.exit({fn}())"
    env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.returncode


def _imports_from(checkout: Path, cwd: Path) -> str:
    code = "import cream; print(cream.__file__)"
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="the revision to compare with (default HEAD)")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cream-startup-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), a.base], cwd=common.ROOT, check=True,
                       capture_output=True)
        try:
            checkouts = {"ours": common.ROOT, "base": base}
            for name, path in checkouts.items():  # PYTHONPATH must win over the editable install
                got = _imports_from(path, Path(tmp))
                assert got.startswith(str(path)), (name, got)
            times = {c: {k: [] for k in checkouts} for c in COMMANDS}
            for _ in range(a.reps):
                for command, (fn, args) in COMMANDS.items():
                    for name, path in checkouts.items():
                        times[command][name].append(_run(path, fn, args, Path(tmp)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=common.ROOT, check=False)
    print(f"{'command':<46} {'ours wall':>9} {'base wall':>9} {'ratio':>6} {'ours cpu':>8} {'base cpu':>8} "
          f"{'ratio':>6}")
    figures = {}
    for command, by in times.items():  # both checkouts end each command alike (0 for --help, 2 when refused)
        codes = {t[2] for v in by.values() for t in v}
        assert len(codes) == 1, f"{command}: exit statuses differ: {codes}"
        w = {k: common.median([t[0] for t in v]) for k, v in by.items()}
        c = {k: common.median([t[1] for t in v]) for k, v in by.items()}
        print(f"{command:<46} {w['ours']:9.2f} {w['base']:9.2f} {w['ours'] / w['base']:6.2f} {c['ours']:8.2f} "
              f"{c['base']:8.2f} {c['ours'] / c['base']:6.2f}")
        figures[command] = {"wall_s": w, "cpu_s": c}
    common.emit("startup", "none", {"base": a.base, "reps": a.reps, "median": figures})


if __name__ == "__main__":
    main()
