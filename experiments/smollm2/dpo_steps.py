"""Each DPO step of the SmolLM2 runs, from its stage manifest (``iter_<t>/dpo/manifest.json``; collect.sh
copies it next to the run's results.jsonl):

    python experiments/smollm2/dpo_steps.py [experiments/smollm2/runs]

weight is the mean consistency weight C on the pairs (1 for SRLM). The train/ values are those of the last
optimizer step (Lightning's callback_metrics: one batch of up to 8 pairs), in TRL's terms: rewards are
beta * (log pi_theta - log pi_ref) of the chosen (y+) and rejected (y-) response, margins their difference,
accuracies the share of pairs with a positive margin.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [("weight", "mean_weight", 3), ("pairs", "n_pairs", 0), ("steps", "steps", 0), ("loss", "train/loss", 3),
           ("rewards/chosen", "train/rewards/chosen", 2), ("rewards/rejected", "train/rewards/rejected", 2),
           ("rewards/margins", "train/rewards/margins", 2), ("rewards/accuracies", "train/rewards/accuracies", 2)]


def main(root: Path) -> str:
    lines = ["| run | t | " + " | ".join(c for c, _, _ in COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for manifest in sorted(root.glob("*/iter_*/dpo/manifest.json")):
        summary = json.loads(manifest.read_text())["summary"]
        run, t = manifest.parents[2].name, manifest.parents[1].name.removeprefix("iter_")
        lines.append(f"| {run} | {t} | " + " | ".join(f"{summary[key]:.{d}f}" for _, key, d in COLUMNS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "runs")))
