"""Whole pipeline: run the default ``cream-train`` once and report its wall time per stage.

    .venv/bin/python experiments/perf/pipeline.py [--run-dir DIR] [-- extra hydra overrides]

Reads ``<run dir>/timings.json`` (written at the end of every run) and prints a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=None, help="hydra.run.dir (default: a fresh temp folder, deleted afterwards)")
    ap.add_argument("--size", default="tiny", choices=["tiny"], help="the default pipeline is the tiny model")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for cream-train")
    a = ap.parse_args()
    tmp = None
    run_dir = Path(a.run_dir) if a.run_dir else Path(tmp := tempfile.mkdtemp(prefix="cream_perf_pipeline_")) / "run"
    cmd = [str(ROOT / ".venv" / "bin" / "cream-train"), f"hydra.run.dir={run_dir}", *a.overrides]
    print("running:", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env={**__import__("os").environ, "CREAM_PROGRESS": "0"},
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        print(p.stdout[-5000:])
        sys.exit(f"cream-train failed with exit code {p.returncode}")
    timings = json.loads((run_dir / "timings.json").read_text())
    stages = {k: round(v["seconds"], 2) for k, v in timings.items() if v.get("seconds") is not None}
    total = sum(stages.values())
    by_kind: dict[str, float] = {}
    for k, s in stages.items():
        kind = "eval" if k.startswith("eval/") else k.split("/")[-1]
        by_kind[kind] = round(by_kind.get(kind, 0.0) + s, 2)
    print(f"\n{'stage':<24}{'seconds':>10}{'share':>8}")
    for k, s in stages.items():
        print(f"{k:<24}{s:>10.2f}{s / total:>8.1%}")
    print(f"{'sum of stages':<24}{total:>10.2f}\n{'process wall (incl. start-up)':<24}{wall:>10.2f}")
    print("by stage kind:", ", ".join(f"{k} {v:.1f}s" for k, v in sorted(by_kind.items(), key=lambda x: -x[1])))
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"script": "pipeline", "size": "tiny", "wall_s": round(wall, 2), "sum_stages_s": round(total, 2),
                      "stages_s": stages, "by_kind_s": by_kind}))


if __name__ == "__main__":
    main()
