"""The ablation study's declared analyses (PLAN.md, "Analyses"), from the committed run summaries in runs/:

    python experiments/smollm2_ablation/analysis.py paired [RUNS]       # contrasts per seed, mean, 95% t interval
    python experiments/smollm2_ablation/analysis.py questions [RUNS] [MODEL]  # per-question McNemar within seed at M4
    python experiments/smollm2_ablation/analysis.py mechanism [RUNS]    # AUC of per-prompt C, pairs, diagnostics
    python experiments/smollm2_ablation/analysis.py plots [RUNS] [OUT]  # consistency.png, accuracy.png, repetition.png
    python experiments/smollm2_ablation/analysis.py progress [RUNS]     # every evaluated model of every run, so far
    python experiments/smollm2_ablation/analysis.py answers [RUNS]      # the answer letters each evaluated model gives
    python experiments/smollm2_ablation/analysis.py pair-answers OUT    # the answer letters of each step's pairs

A run dir is ``<arm>_s<seed>`` (run.sh). A contrast X - Y is paired within a seed: the two runs share M0, M1 and
the stages run.sh copied, so the seed's noise in those cancels. For each quantity, the table gives the difference
per seed whose two runs are complete, the mean, the 95% t interval over seeds (mean +- t_{0.975, n-1} s / sqrt n;
with 3 seeds, t = 4.30) and the two-sided one-sample t-test's p (scipy.stats.ttest_1samp), through
cream.report.runs.summarize. The per-question test is experiments/smollm2/paired.py's (exact McNemar,
scipy.stats.binomtest), per benchmark; the plots are cream.report.plots' band plots.
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

from matplotlib.ticker import MaxNLocator
from scipy import stats

from cream.artifacts import read_jsonl
from cream.evaluation.answers import find_choice
from cream.report.plots import _band_plot, _figure, _no_data, save_figure
from cream.report.runs import summarize

HERE = Path(__file__).resolve().parent
ARMS = {"a_srlm": "A", "b_cream": "B", "c_cream_controls": "C", "d_srlm_controls": "D", "e_fixed_c": "E"}
# C - A and C - B are descriptive (PLAN.md section 12, item 14): with D cut, C - A mixes the regularizer with the
# controls, and C - B is the controls' effect within CREAM (with C's floor and first step)
CONTRASTS = [("B", "A", "primary"), ("C", "D", "primary"), ("C", "E", "secondary"), ("D", "A", "secondary"),
             ("C", "A", "descriptive"), ("C", "B", "descriptive")]
FINAL = "M4"


def _acc(metric: str, bench: str):
    return lambda rows, model: (rows.get(model, {}).get(metric) or {}).get(bench)


def _c(t: int):
    def value(rows, model):
        row = next((r for r in rows.values() if r.get("iteration") == t), None)
        return None if row is None or row.get("consistency") is None else row["consistency"]["mean"]
    return value


def _diagnostic(t: int, key: str):
    def value(rows, model):
        row = next((r for r in rows.values() if r.get("iteration") == t), None)
        return None if row is None else (row.get("diagnostics") or {}).get(key)
    return value


# (label, value(rows by model, model), scale, digits): the primary outcomes first (PLAN.md, "Analyses")
QUANTITIES = [
    ("C, t = 2", _c(2), 1.0, 3),
    ("C, t = 3", _c(3), 1.0, 3),
    ("ARC-Easy acc_norm, M4", _acc("eval_acc_norm", "arc_easy"), 100.0, 1),
    ("ARC-Challenge acc_norm, M4", _acc("eval_acc_norm", "arc_challenge"), 100.0, 1),
    ("ARC-Easy strict, M4", _acc("eval_strict", "arc_easy"), 100.0, 1),
    ("ARC-Easy lenient, M4", _acc("eval_lenient", "arc_easy"), 100.0, 1),
    ("repetition, t = 3", _diagnostic(3, "repetition_rate"), 1.0, 3),
]


def _arm_dirs(out: Path) -> list[Path]:
    """The arms' run dirs ``<arm>_s<seed>`` in ``out``, sorted."""
    return sorted(p for p in out.glob("*_s*") if (m := re.fullmatch(r"(.+)_s(\d+)", p.name)) and m.group(1) in ARMS)


def load(root: Path) -> dict[str, dict[int, dict[str, dict]]]:
    """Arm letter -> seed -> {model: results row}, for every run dir named ``<arm>_s<seed>`` with results."""
    out: dict[str, dict[int, dict[str, dict]]] = {}
    for path in sorted(root.glob("*_s*/results.jsonl")):
        m = re.fullmatch(r"(.+)_s(\d+)", path.parent.name)
        if m and m.group(1) in ARMS:
            out.setdefault(ARMS[m.group(1)], {})[int(m.group(2))] = {r["model"]: r for r in read_jsonl(path)}
    return out


def interval(diffs: list[float]) -> tuple[float, float, float, float | None]:
    """Mean, 95% t interval (lo, hi) and the two-sided p of the paired t-test; equal values give p None."""
    s = summarize(diffs)
    if s.n < 2:
        return s.mean, math.nan, math.nan, None
    half = stats.t.ppf(0.975, s.n - 1) * s.std / math.sqrt(s.n)
    p = float(stats.ttest_1samp(diffs, 0.0).pvalue) if s.std else None
    return s.mean, s.mean - half, s.mean + half, p


def _fmt(x: float | None, digits: int, sign: str = "+") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{sign}.{digits}f}"


def paired(root: Path) -> str:
    arms = load(root)
    lines = ["| contrast | quantity | per seed | mean | 95% t interval | p (paired t) | n |",
             "|---|---|---|---|---|---|---|"]
    for x, y, kind in CONTRASTS:
        seeds = sorted(set(arms.get(x, {})) & set(arms.get(y, {})))
        for label, value, scale, digits in QUANTITIES:
            model = FINAL
            pairs = [(s, value(arms[x][s], model), value(arms[y][s], model)) for s in seeds]
            diffs = [(s, scale * (a - b)) for s, a, b in pairs if a is not None and b is not None]
            if not diffs:
                continue
            mean, lo, hi, p = interval([d for _, d in diffs])
            per_seed = ", ".join(f"s{s} {_fmt(d, digits)}" for s, d in diffs)
            lines.append(f"| {x} - {y} ({kind}) | {label} | {per_seed} | {_fmt(mean, digits)} | "
                         f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}] | {_fmt(p, 2, '')} | {len(diffs)} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ per question
FILES = [("ARC-Easy acc_norm", "predictions_loglik.jsonl", "acc_norm", "arc_easy"),
         ("ARC-Challenge acc_norm", "predictions_loglik.jsonl", "acc_norm", "arc_challenge"),
         ("ARC-Easy strict", "predictions.jsonl", "strict", "arc_easy"),
         ("ARC-Easy lenient", "predictions.jsonl", "lenient", "arc_easy")]


def _correct(path: Path, key: str, bench: str) -> dict[str, bool]:
    rows = [r for r in read_jsonl(path) if r.get("benchmark", bench) == bench]
    return {r["id"]: bool(r[key]["correct"]) for r in rows}


def mcnemar(x: dict[str, bool], y: dict[str, bool]) -> tuple[int, int, float]:
    """Questions only x answers right (b), only y (c), and the exact McNemar test's two-sided p."""
    if x.keys() != y.keys():
        raise SystemExit("the two models answer different questions")
    b = sum(x[q] and not y[q] for q in x)
    c = sum(y[q] and not x[q] for q in x)
    return b, c, (stats.binomtest(b, b + c).pvalue if b + c else 1.0)


def questions(out: Path, final: str = FINAL) -> str:
    """Per contrast, seed and measure at M4 (``final``): b / c and p, from the per-question predictions of the run
    dirs or of their committed copies (collect.sh)."""
    names = {v: k for k, v in ARMS.items()}
    lines = ["| contrast | seed | " + " | ".join(f"{label}: b / c | p" for label, *_ in FILES) + " |",
             "|---|---|" + "---|---|" * len(FILES)]
    for x, y, _ in CONTRASTS:
        for run in sorted(out.glob(f"{names[x]}_s*")):
            seed = run.name.rsplit("_s", 1)[1]
            other = out / f"{names[y]}_s{seed}"
            cells = []
            for _, name, key, bench in FILES:
                a, b = run / "eval" / final / name, other / "eval" / final / name
                if not (a.exists() and b.exists()):
                    break
                nb, nc, p = mcnemar(_correct(a, key, bench), _correct(b, key, bench))
                cells.append(f"{nb} / {nc} | {p:.2g}")
            if len(cells) == len(FILES):
                lines.append(f"| {x} - {y} | s{seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- mechanism
DIAGNOSTICS = [("truncated", "truncation_rate", 3), ("length", "mean_length", 0), ("repetition", "repetition_rate", 3),
               ("distinct-2", "distinct_2", 3), ("chosen len", "chosen_length", 0),
               ("rejected len", "rejected_length", 0), ("good", "good_pairs", 3), ("bad", "bad_pairs", 3),
               ("other", "other_pairs", 3), ("verifiable", "n_verifiable", 0)]


def _auc(d: dict) -> str:
    if d.get("auc_c") is None:
        return "-"
    lo, hi = d.get("auc_c_lo"), d.get("auc_c_hi")
    return f"{d['auc_c']:.2f} [{_fmt(lo, 2, '')}, {_fmt(hi, 2, '')}]"


def mechanism(root: Path) -> str:
    """Per arm, seed and iteration: the AUC of per-prompt C for good vs bad pairs (bootstrap interval), then the
    iteration's diagnostics; and per arm and iteration the mean AUC over seeds."""
    arms = load(root)
    head = ["arm", "seed", "t", "AUC of C (good vs bad)", *(label for label, _, _ in DIAGNOSTICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    means = []
    for arm in sorted(arms):
        by_t: dict[int, list[float]] = {}
        for seed, rows in sorted(arms[arm].items()):
            for row in sorted((r for r in rows.values() if r.get("iteration")), key=lambda r: r["iteration"]):
                d = row.get("diagnostics") or {}
                if d.get("auc_c") is not None:
                    by_t.setdefault(row["iteration"], []).append(d["auc_c"])
                cells = [_fmt(d.get(key), digits, "") for _, key, digits in DIAGNOSTICS]
                lines.append(f"| {arm} | s{seed} | {row['iteration']} | {_auc(d)} | " + " | ".join(cells) + " |")
        means += [f"| {arm} | {t} | {summarize(v).mean:.2f} | {len(v)} |" for t, v in sorted(by_t.items())]
    return "\n".join(lines + ["", "| arm | t | mean AUC over seeds | n |", "|---|---|---|---|", *means])


# -------------------------------------------------------------------------------------------- progress
PROGRESS = [("ARC-Easy acc_norm", "eval_acc_norm", "arc_easy"),
            ("ARC-Challenge acc_norm", "eval_acc_norm", "arc_challenge"),
            ("ARC-Easy strict", "eval_strict", "arc_easy"), ("ARC-Easy lenient", "eval_lenient", "arc_easy"),
            ("ARC-Challenge lenient", "eval_lenient", "arc_challenge")]


def _points(row: dict, metric: str, bench: str) -> str:
    acc, se = (row.get(metric) or {}).get(bench), (row.get(f"{metric}_stderr") or {}).get(bench)
    return "-" if acc is None else f"{100 * acc:.1f} ± {100 * se:.1f}"


def progress(root: Path) -> str:
    """Every model evaluated so far in every run (complete or not), accuracy ± standard error in points, with the C
    and the number of pairs of the iteration that trained it: the study's state before its analyses can run."""
    lines = ["| run | model | " + " | ".join(label for label, *_ in PROGRESS) + " | C of the step before | pairs |",
             "|---|---|" + "---|" * (len(PROGRESS) + 2)]
    for run in _arm_dirs(root):
        for row in read_jsonl(run / "results.jsonl") if (run / "results.jsonl").exists() else []:
            c = (row.get("consistency") or {}).get("mean")
            cells = [_points(row, metric, bench) for _, metric, bench in PROGRESS]
            cells += [_fmt(c, 3, ""), "-" if row.get("n_pairs") is None else str(row["n_pairs"])]
            lines.append(f"| {run.name} | {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- answers
def _answer_row(rows: list[dict], key: str) -> list[str]:
    """n, no answer, the most common answer with its share, and the accuracy among the questions given that answer
    and among the others: a model that gives one letter to most questions scores about that letter's share of the
    gold answers, whatever it knows."""
    letters = [(r[key].get("answer"), bool(r[key]["correct"])) for r in rows]
    given = [a for a, _ in letters if a is not None]
    if not given:
        return [str(len(rows)), str(len(rows)), "-", "-", "-", "-"]
    top = max(sorted(set(given)), key=given.count)
    on_top = [c for a, c in letters if a == top]
    others = [c for a, c in letters if a != top]

    def share(xs: list[bool]) -> str:
        return "-" if not xs else f"{100 * sum(xs) / len(xs):.1f}"
    return [str(len(rows)), str(len(rows) - len(given)), top, f"{100 * len(on_top) / len(rows):.1f}",
            share(on_top), share(others)]


def answers(out: Path, key: str = "strict", bench: str = "arc_easy") -> str:
    """Per run and evaluated model, what its generative answers are (``key``: strict or lenient extraction), from
    eval/M<k>/predictions.jsonl of the run dirs or of their committed copies (collect.sh keeps each answer).
    experiments/smollm2/drift.py gives the modal letter too, with loops and lengths, from run dirs' raw outputs."""
    lines = ["| run | model | questions | no answer | most common answer | its share (%) | right when given it (%) "
             "| right otherwise (%) |", "|---|---|---|---|---|---|---|---|"]
    for run in _arm_dirs(out):
        for path in sorted(run.glob("eval/M*/predictions.jsonl"), key=lambda p: _model_number(p.parent.name)):
            rows = [r for r in read_jsonl(path) if r.get("benchmark", bench) == bench and key in r]
            if rows and "answer" in rows[0][key]:
                lines.append(f"| {run.name} | {path.parent.name} | " + " | ".join(_answer_row(rows, key)) + " |")
    return "\n".join(lines)


def pair_answers(out: Path, labels: str = "ABCDE") -> str:
    """Per run and iteration, how many chosen / rejected responses of the pairs end on each answer letter (strict
    extraction: an "Answer: X" line), from iter_<t>/pairs/pairs.jsonl of the run dirs (collect.sh keeps no pairs).
    A step weighted by C trains toward the chosen letters with weight C and toward the rejected with 1 - C."""
    cols = [*labels, None]
    lines = ["| run | t | pairs | " + " | ".join(c or "no answer" for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for run in _arm_dirs(out):
        for path in sorted(run.glob("iter_*/pairs/pairs.jsonl"), key=lambda p: int(p.parent.parent.name[5:])):
            rows = read_jsonl(path)
            count = {side: [find_choice(r[side], labels, strict=True).answer for r in rows]
                     for side in ("chosen", "rejected")}
            cells = [f"{count['chosen'].count(c)} / {count['rejected'].count(c)}" for c in cols]
            lines.append(f"| {run.name} | {path.parent.parent.name[5:]} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- plots
class _Run:  # what cream.report.plots._band_plot reads of a run
    def __init__(self, rows: dict[str, dict]):
        self.rows = rows


def _groups(arms) -> dict[str, list[_Run]]:
    return {f"arm {a}": [_Run(rows) for rows in arms[a].values()] for a in sorted(arms)}


def _by_iteration(key):
    return lambda run: {r["iteration"]: key(r) for r in run.rows.values() if r.get("iteration")}


def _model_number(model: str) -> int:
    return int(model[1:])


def figures(root: Path) -> dict:
    arms = load(root)
    groups = _groups(arms)
    specs = {
        "consistency.png": (_by_iteration(lambda r: (r.get("consistency") or {}).get("mean")), "iteration",
                            "consistency rate C", "C per iteration (mean over seeds, band = min..max)"),
        "accuracy.png": (lambda run: {_model_number(m): 100 * v for m, r in run.rows.items()
                                      if (v := (r.get("eval_acc_norm") or {}).get("arc_easy")) is not None},
                         "model (M_k)", "ARC-Easy acc_norm (%)",
                         "Accuracy per model (mean over seeds, band = min..max)"),
        "repetition.png": (_by_iteration(lambda r: (r.get("diagnostics") or {}).get("repetition_rate")), "iteration",
                           "repetition rate of the samples",
                           "Repetition per iteration (mean over seeds, band = min..max)"),
    }
    out = {}
    for name, (points, xlabel, ylabel, title) in specs.items():
        fig, ax = _figure()
        if not _band_plot(ax, groups, points):
            _no_data(ax, ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # models and iterations are whole numbers
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        out[name] = fig
    return out


def write_plots(root: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(root).items():
        save_figure(fig, dest / name)
        paths.append(dest / name)
    return paths


def main(argv: list[str]) -> str:
    cmd = argv[0] if argv else ""
    root = Path(argv[1]) if len(argv) > 1 else HERE / "runs"
    if cmd == "paired":
        return paired(root)
    if cmd == "questions":  # MODEL (default M4): an earlier model, from the run dirs (collect.sh keeps the last)
        return questions(root, argv[2] if len(argv) > 2 else FINAL)
    if cmd == "mechanism":
        return mechanism(root)
    if cmd == "progress":
        return progress(root)
    if cmd == "answers":
        return answers(root)
    if cmd == "pair-answers":
        return pair_answers(root)
    if cmd == "plots":
        return "\n".join(map(str, write_plots(root, Path(argv[2]) if len(argv) > 2 else HERE)))
    raise SystemExit(__doc__)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
