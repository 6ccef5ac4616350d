"""What the SmolLM2 models write, per model: the shape of their outputs, read from run dirs (not committed:
predictions and samples stay with the run).

    python experiments/smollm2/drift.py RUN_DIR [RUN_DIR ...]

For each run and model M_k, from ``eval/M_k/predictions.jsonl`` (greedy answers to the 300 generative
ARC-Easy questions) and, where M_k sampled, ``iter_k/sample/samples.jsonl`` (64 prompts x N responses):
- modal letter: the letter the lenient extraction finds most often, and its share of the 300 answers
  (gold letters are spread about evenly, so a share far above 25% is a habit, not knowledge);
- no letter: answers where the lenient extraction finds none;
- looping: answers in which one non-empty line occurs 3 or more times (generation that repeats itself until
  the token limit);
- chars: mean answer length in characters;
- samples: of M_k's sampled responses, how many are only "Answer: X" or "Answer:" (no reasoning), and how
  many loop;
- pairs: of the pairs M_k's self-reward picked from them (``iter_k/pairs/pairs.jsonl``), in how many the chosen
  response is the longer one (characters), and how many chosen and how many rejected responses loop.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from cream.artifacts import read_jsonl

BARE = re.compile(r"^\s*answer:\s*[A-Za-z]?\.?\s*$", re.IGNORECASE)


def looping(text: str, times: int = 3) -> bool:
    lines = Counter(line.strip() for line in text.splitlines() if line.strip())
    return bool(lines) and max(lines.values()) >= times


def model_row(run: Path, k: int) -> list[str] | None:
    preds = run / "eval" / f"M{k}" / "predictions.jsonl"
    if not preds.exists():
        return None
    rows = read_jsonl(preds)  # the generative answers (lm-eval's are in predictions_loglik.jsonl)
    letters = Counter(r["lenient"]["answer"] for r in rows)
    letter, count = max(((a, c) for a, c in letters.items() if a), key=lambda x: x[1], default=("-", 0))
    n = len(rows)
    cells = [run.name, f"M{k}", f"{letter} {100 * count / n:.0f}%", f"{100 * letters.get(None, 0) / n:.0f}%",
             f"{100 * sum(looping(r['output']) for r in rows) / n:.0f}%",
             f"{sum(len(r['output']) for r in rows) / n:.0f}"]
    samples = run / f"iter_{k}" / "sample" / "samples.jsonl"
    if samples.exists():
        responses = [y for r in read_jsonl(samples) for y in r["responses"]]
        cells.append(f"{sum(bool(BARE.match(y)) for y in responses)} / {sum(looping(y) for y in responses)} of "
                     f"{len(responses)}")
    else:
        cells.append("")
    pairs = run / f"iter_{k}" / "pairs" / "pairs.jsonl"
    if pairs.exists():
        rows = read_jsonl(pairs)
        longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in rows)
        cells.append(f"{longer} of {len(rows)} / {sum(looping(r['chosen']) for r in rows)}"
                     f" / {sum(looping(r['rejected']) for r in rows)}")
    else:
        cells.append("")
    return cells


def main(runs: list[Path]) -> str:
    lines = ["| run | model | modal letter | no letter | looping | chars | samples: bare / looping"
             " | pairs: chosen longer / looping chosen / looping rejected |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        k = 0
        while (row := model_row(run, k)) is not None:
            lines.append("| " + " | ".join(row) + " |")
            k += 1
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(main([Path(p) for p in sys.argv[1:]]))
