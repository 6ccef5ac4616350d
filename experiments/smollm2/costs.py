"""Wall time and peak memory per stage of the committed SmolLM2 runs, as a Markdown table.

    python experiments/smollm2/costs.py [experiments/smollm2/runs]

Reads every ``<run>/timings.json`` (the stage manifests' ``seconds`` and ``peak_rss_mb``, whichever invocation
of a resumed run computed the stage). An SRLM run starts from copies of its seed's CREAM stages up to
iteration 1's pairs (``run.sh``); a copied stage keeps its manifest, so its figures equal the source's to
the millisecond. Such a stage is shown once, under the run that computed it (the first by name), and left
blank in the others. A stage that kills made run in pieces (``earlier_attempts``, ``cream.report.attempts``) is
shown with the time and largest peak of all its attempts, and how many there were.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _all_attempts(s: dict) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, attempts) of a stage over every attempt at it."""
    e = s.get("earlier_attempts") or {"count": 0, "seconds": 0.0, "peak_rss_mb": 0.0}
    return s["seconds"] + e["seconds"], max(s["peak_rss_mb"], e["peak_rss_mb"]), 1 + e["count"]


def _cell(s: dict) -> str:
    seconds, peak, n = _all_attempts(s)
    return f"{seconds / 60:.1f} min, {peak / 1024:.1f} GB" + (f" ({n} attempts)" if n > 1 else "")


def _key(s: dict) -> tuple:
    return _all_attempts(s)


def main(root: Path) -> str:
    runs = {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob("*/timings.json"))}
    stages = list(dict.fromkeys(s for t in runs.values() for s in t))
    seen: dict[str, set] = {stage: set() for stage in stages}
    own: dict[str, dict[str, dict]] = {}
    for name, t in runs.items():
        own[name] = {}
        for stage, s in t.items():
            if _key(s) not in seen[stage]:
                seen[stage].add(_key(s))
                own[name][stage] = s
    lines = ["| stage | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for stage in stages:
        cells = [_cell(s) if (s := own[name].get(stage)) else "" for name in runs]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    total = [sum(_all_attempts(s)[0] for s in own[name].values()) / 60 for name in runs]
    lines.append("| **total (stages computed)** | " + " | ".join(f"{m:.0f} min" for m in total) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "runs")))
