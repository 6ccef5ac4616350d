"""``cream-table DIR [DIR ...]`` (cream/cli.py): results of many runs as one table (Markdown, LaTeX booktabs, CSV).

Rows are method x model (M0..M_{T+1}); columns are each benchmark's accuracy (%), their average, the
consistency rate C and the preference pairs kept. One statistic per table, named in its caption: with two or more
seeds for some method, ``mean ± std`` over seeds (ddof=1; a method with one run shows its mean alone); with one run
per method, ``mean ± se``, the run's binomial standard error. M0 and M1 (trained before any method acts), when identical
for every method, are shown once, as "all methods". The best value of each column among the methods, per model,
is bold. Incomplete runs are listed under the table and never averaged in. ``--metric`` picks the accuracy
(``cream.report.runs.METRICS``; default ``auto``: acc_norm when the runs have log-likelihood accuracies, else gen).
``table_<metric>.md``, ``table_<metric>.tex`` and ``runs_<metric>.csv`` (one row per run x model, accuracies and
their standard errors ``<col>_se`` in %, then every diagnostic) are written to the first DIR (or ``--out``);
``--format`` picks what is printed.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from cream.report.runs import (
    DIAGNOSTIC_COLUMNS,
    EXTRA_COLUMNS,
    KINDS,
    METRICS,
    Run,
    Stat,
    benchmarks,
    group_runs,
    model_index,
    models_of,
    stderr_value,
    summarize,
    value,
)

HEADERS = {"avg": "Avg", "C": "C", "pairs": "Pairs"}
LOWER_IS_BETTER: set[str] = set()
NOT_RANKED = {"pairs", *DIAGNOSTIC_COLUMNS}  # counts and diagnostics are not a quality: never bold


SHARED = "all methods"


@dataclass
class Line:
    """One table row: a method's model with one Stat per column, over ``n`` complete runs."""

    method: str
    model: str
    n: int
    stats: list[Stat]
    best: set[int] = field(default_factory=set)


@dataclass
class Table:
    columns: list[str]
    lines: list[Line]
    incomplete: list[Run]
    metric: str = "gen"
    statistic: str = "std"  # std: over seeds (ddof=1) | se: each single run's binomial standard error


def default_columns(runs: list[Run], metric: str = "gen") -> list[str]:
    return benchmarks(runs, metric) + list(EXTRA_COLUMNS)


def available_columns(runs: list[Run], metric: str = "gen") -> list[str]:
    """The default columns and, by name, the per-iteration diagnostics (``--columns good_pairs,auc_c``)."""
    return default_columns(runs, metric) + list(DIAGNOSTIC_COLUMNS)


def build_table(runs: list[Run], columns: list[str] | None = None, metric: str = "gen") -> Table:
    """Average the complete runs of each method per model and column, show rows every method shares once, and
    mark each column's best per model."""
    groups = group_runs(runs)
    complete = [r for g in groups.values() for r in g]
    columns = list(columns or default_columns(complete or runs, metric))
    statistic = "std" if any(len(g) > 1 for g in groups.values()) else "se"
    lines = []
    for method, group in groups.items():
        for model in models_of(group):
            stats = [summarize(value(r.row(model), col, metric) for r in group) for col in columns]
            if statistic == "se":
                for col, st in zip(columns, stats):
                    st.se = stderr_value(group[0].row(model), col, metric)
            lines.append(Line(method, model, len(group), stats))
    lines = _share(lines, columns, len(groups))
    for model in {line.model for line in lines}:
        same = [line for line in lines if line.model == model]
        for j, col in enumerate(columns):
            if col in NOT_RANKED:
                continue
            shown = [(line, _round(col, line.stats[j].mean)) for line in same if line.stats[j].mean is not None]
            if len(shown) < 2 or len({v for _, v in shown}) == 1:  # one method, or all equal: nothing is best
                continue
            pick = min if col in LOWER_IS_BETTER else max
            best = pick(v for _, v in shown)
            for line, v in shown:
                if v == best:
                    line.best.add(j)
    return Table(columns, lines, [r for r in runs if not r.complete], metric, statistic)


def _share(lines: list[Line], columns: list[str], n_methods: int) -> list[Line]:
    """M0 and M1 (trained before any method acts), when their rows read the same for every method, become one
    row each, "all methods", placed first (a later model that happens to agree keeps its rows: it was trained
    by each method)."""
    if n_methods < 2:
        return lines
    shared, out = [], []
    for model in sorted({line.model for line in lines}, key=lambda m: [x.model for x in lines].index(m)):
        same = [line for line in lines if line.model == model]
        texts = {tuple(cell(c, s, line.n) for c, s in zip(columns, line.stats)) + (line.n,) for line in same}
        if len(same) == n_methods and len(texts) == 1 and model_index(model) <= 1:
            shared.append(Line(SHARED, model, same[0].n, same[0].stats))
    names = {line.model for line in shared}
    out = shared + [line for line in lines if line.model not in names]
    return out


COUNTS = {"pairs", "n_verifiable"}  # integers: a mean over seeds keeps one decimal only when it is not whole


def _digits(col: str, v: float | None = None) -> int:
    if col in COUNTS:
        return 0 if v is None or float(v).is_integer() else 1
    shares = col in DIAGNOSTIC_COLUMNS and not col.endswith("length")  # rates, shares and the AUC: in [0, 1]
    return 3 if col == "C" or shares else 1


def _round(col: str, v: float) -> float:
    return round(v, _digits(col, v))


def _num(col: str, v: float) -> str:
    return f"{v:.{_digits(col, v)}f}"


def cell(col: str, s: Stat, n: int, pm: str = "±") -> str:
    if s.mean is None:
        return "-"
    text = _num(col, s.mean)
    spread = s.std if s.std is not None else s.se
    if spread is not None:
        text += f" {pm} {_num(col, spread)}"
    if s.n != n:
        text += f" (n={s.n})"
    return text


STATISTICS = {"std": "mean ± std over seeds (ddof=1; n = seeds; a method with one seed: its mean)",
              "se": "one run per method: accuracy ± its binomial standard error"}


def _caption(table: Table) -> str:
    shared = f' "{SHARED}": the same for every method.' if any(line.method == SHARED for line in table.lines) else ""
    return (f"Accuracy (%, {KINDS[table.metric]}: `{METRICS[table.metric][0]}` in results.jsonl), "
            f"{STATISTICS[table.statistic]}. C = consistency rate; Pairs = preference pairs kept; "
            f"bold = best per column and model.{shared}")


def _header(table: Table) -> list[str]:
    return ["Method", "Model", *(HEADERS.get(c, c) for c in table.columns), "n"]


def _body(table: Table, bold, pm: str = "±", esc=lambda s: s) -> list[list[str]]:
    rows, last = [], None
    for line in table.lines:
        cells = [cell(c, s, line.n, pm) for c, s in zip(table.columns, line.stats)]
        cells = [bold(esc(t)) if j in line.best else esc(t) for j, t in enumerate(cells)]
        rows.append([esc(line.method) if line.method != last else "", line.model, *cells, str(line.n)])
        last = line.method
    return rows


def to_markdown(table: Table) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    rows = [_header(table)] + _body(table, lambda t: f"**{t}**", esc=esc)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    out = [_caption(table), "", fmt(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(r) for r in rows[1:]]
    if not table.lines:
        out.append("\n(no complete runs)")
    if table.incomplete:
        out += ["", "Incomplete runs (not averaged):"] + [f"- `{r.path}`: {r.problem}" for r in table.incomplete]
    return "\n".join(out) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$"}


def latex_escape(text: str) -> str:
    return re.sub(r"[\\_%&#${}~^±]", lambda m: _LATEX[m.group()], text)


def to_latex(table: Table) -> str:
    """A booktabs ``tabular`` fragment (needs ``\\usepackage{booktabs}``)."""
    ncols = len(table.columns)
    out = ["% " + latex_escape(_caption(table)).replace("`", ""),
           r"\begin{tabular}{ll" + "r" * ncols + "r}", r"\toprule",
           " & ".join(latex_escape(h) for h in _header(table)) + r" \\", r"\midrule"]
    body = _body(table, lambda t: rf"\textbf{{{t}}}", esc=latex_escape)
    for i, row in enumerate(body):
        if i and row[0]:
            out.append(r"\midrule")
        out.append(" & ".join(row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [f"% incomplete (not averaged): {r.path}: {r.problem}" for r in table.incomplete]
    return "\n".join(out) + "\n"


def to_csv(runs: list[Run], metric: str = "gen") -> str:
    """Every run's numbers, one row per run x model (accuracies in %, C as a rate, pairs as a count), then the
    standard errors and, last, the iteration's diagnostics (empty for M0 and M1)."""
    benches = benchmarks(runs, metric)
    cols = benches + list(EXTRA_COLUMNS)
    se_cols = benches + ["avg"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run_dir", "method", "seed", "model", "complete", *cols, *(f"{c}_se" for c in se_cols),
                *DIAGNOSTIC_COLUMNS])
    for r in runs:
        for row in r.rows:
            vals = ([value(row, c, metric) for c in cols] + [stderr_value(row, c, metric) for c in se_cols]
                    + [value(row, c, metric) for c in DIAGNOSTIC_COLUMNS])
            w.writerow([str(r.path), r.method, r.seed, row.get("model"), r.complete,
                        *("" if v is None else v for v in vals)])
    return buf.getvalue()
