"""CREAM minus SRLM, seed by seed, from the committed run summaries (``<run>/results.jsonl``):

    python experiments/smollm2/paired.py [experiments/smollm2/runs]
    python experiments/smollm2/paired.py --questions RUNS_ROOT     # per question, from the run dirs

The two runs of a seed share M0, M1 and iteration 1's pairs (run.sh), so their difference at each later model
is a paired comparison: the seed's noise in SFT and in iteration 1's samples cancels. For each model from M2 on
and each quantity (lm-eval acc_norm, the generative lenient accuracy, both in points; C of the iteration that
trained the model), the table gives the difference for every seed whose two runs are complete, their mean and
std (ddof=1), how many seeds favour CREAM, and the two-sided paired t-test's p-value (a one-sample t-test of
the differences against 0, scipy.stats.ttest_1samp;
with 3 seeds it has 2 degrees of freedom, so only a large and steady difference reaches p < 0.05).

``--questions`` reads the run dirs themselves (per-question predictions are not committed): for each seed and
model, the questions only CREAM's model answers right (b) and only SRLM's (c), in lm-eval's format
(``eval/M_k/predictions_loglik.jsonl``, acc_norm) and the generative one (``predictions.jsonl``, lenient), with
the exact McNemar test's two-sided p (scipy.stats.binomtest(b, b + c)). Both models of a seed answer the same
questions, so this is the within-seed test: it asks whether the two models differ, not whether the methods do
(that is the seed-level table's question).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from scipy import stats

from cream.artifacts import read_jsonl
from cream.report.runs import summarize

MODELS = ("M2", "M3", "M4")
QUANTITIES = [  # (label, value of a results.jsonl row, scale, digits)
    ("acc_norm", lambda r: r["eval_acc_norm_avg"], 100.0, 1),
    ("lenient", lambda r: r["eval_lenient_avg"], 100.0, 1),
    ("C", lambda r: r["consistency"]["mean"], 1.0, 3),
]


def _rows(run: Path) -> dict[str, dict] | None:
    path = run / "results.jsonl"
    if not path.exists():
        return None
    rows = {r["model"]: r for r in read_jsonl(path)}
    return rows if all(m in rows for m in ("M0", "M1", *MODELS)) else None


def pairs(root: Path) -> dict[int, tuple[dict, dict]]:
    """Seed -> (CREAM rows, SRLM rows) for the seeds whose two runs are complete."""
    out = {}
    for cream in sorted(root.glob("cream_s*")):
        seed = int(re.fullmatch(r"cream_s(\d+)", cream.name).group(1))
        a, b = _rows(cream), _rows(root / f"srlm_s{seed}")
        if a is not None and b is not None:
            out[seed] = (a, b)
    return out


def _fmt(x: float | None, digits: int, sign: str = "+") -> str:
    return "-" if x is None else f"{x:{sign}.{digits}f}"


def main(root: Path) -> str:
    seeds = pairs(root)
    if not seeds:
        return "no seed has both runs complete"
    head = ["quantity", "model", *(f"s{s}" for s in seeds), "mean", "std", "CREAM higher", "p (paired t)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, value, scale, digits in QUANTITIES:
        for model in MODELS:
            diffs = [scale * (value(a[model]) - value(b[model])) for a, b in seeds.values()]
            stat = summarize(diffs)
            # equal differences (C at M2: shared stages) leave t undefined
            p = float(stats.ttest_1samp(diffs, 0.0).pvalue) if stat.std else None
            lines.append(f"| {label} | {model} | " + " | ".join(_fmt(d, digits) for d in diffs)
                         + f" | {_fmt(stat.mean, digits)} | {_fmt(stat.std, digits, '')}"
                         + f" | {sum(d > 0 for d in diffs)} of {len(diffs)} | {_fmt(p, 2, '')} |")
    return "\n".join(lines)


FILES = [("acc_norm", "predictions_loglik.jsonl", "acc_norm"), ("lenient", "predictions.jsonl", "lenient")]


def _correct(path: Path, key: str) -> dict[str, bool]:
    return {r["id"]: bool(r[key]["correct"]) for r in read_jsonl(path)}


def per_question(root: Path) -> str:
    lines = ["| seed | model | " + " | ".join(f"{label}: b / c | p" for label, _, _ in FILES) + " |",
             "|---|---|" + "---|---|" * len(FILES)]
    for cream in sorted(root.glob("cream_s*")):
        seed = cream.name.removeprefix("cream_s")
        for model in MODELS:
            cells = []
            for _, name, key in FILES:
                a, b = cream / "eval" / model / name, root / f"srlm_s{seed}" / "eval" / model / name
                if not (a.exists() and b.exists()):
                    break
                x, y = _correct(a, key), _correct(b, key)
                if x.keys() != y.keys():
                    raise SystemExit(f"{a} and {b} answer different questions")
                only_x = sum(x[q] and not y[q] for q in x)
                only_y = sum(y[q] and not x[q] for q in x)
                p = stats.binomtest(only_x, only_x + only_y).pvalue if only_x + only_y else 1.0
                cells.append(f"{only_x} / {only_y} | {p:.2g}")
            if len(cells) == len(FILES):
                lines.append(f"| s{seed} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--questions"]:
        print(per_question(Path(args[1])))
    else:
        print(main(Path(args[0] if args else Path(__file__).parent / "runs")))
