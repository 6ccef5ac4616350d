"""Wall time and peak memory per stage of the committed SmolLM2 runs, as a Markdown table.

    python experiments/smollm2/costs.py [experiments/smollm2/runs]

Reads every ``<run>/timings.json``. A stage a run took over from another one (``ran: false``: the SRLM run
starts from its seed's CREAM stages up to iteration 1's pairs) is left out of that run's column.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(root: Path) -> str:
    runs = {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob("*/timings.json"))}
    stages = list(dict.fromkeys(s for t in runs.values() for s in t))
    lines = ["| stage | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for stage in stages:
        cells = []
        for t in runs.values():
            s = t.get(stage)
            cells.append("" if s is None or not s.get("ran") else f"{s['seconds'] / 60:.1f} min, {s['peak_rss_mb'] / 1024:.1f} GB")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    total = [sum(s["seconds"] for s in t.values() if s.get("ran")) / 60 for t in runs.values()]
    lines.append("| **total (stages run)** | " + " | ".join(f"{m:.0f} min" for m in total) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "runs")))
