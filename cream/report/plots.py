"""``cream-plot DIR [DIR ...]`` (cream/cli.py): PNG figures of many runs, grouped into methods like ``cream-table``.

``accuracy_<metric>.png``: average accuracy per model M0..M_{T+1} per method (mean over seeds, band = min..max);
``consistency.png``: consistency rate C per iteration per method (same band);
``tau.png``: per-prompt Kendall/Spearman tau of each iteration per method (box plots, seeds pooled).
Each method has its own marker and line style, so lines that coincide (M0 and M1 are the same for every method)
stay visible. Figures are built on ``matplotlib.figure.Figure`` (Agg canvas, no display) and written to the first
DIR or ``--out``.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cream.artifacts import atomic_write
from cream.report.runs import KINDS, Run, group_runs, model_index, models_of, summarize, taus, value

MARKERS = ("o", "s", "^", "D", "v", "P")
STYLES = ("-", "--", ":", "-.")
FIGSIZE = (6.4, 4.0)  # inches
DPI = 100             # -> 640 x 400 pixels


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)


def _band_plot(ax, groups: dict[str, list[Run]], points) -> bool:
    """One mean line per method with a min..max band over seeds; ``points(run)`` -> {x: y}. False if nothing drawn."""
    drawn = False
    for method, group in groups.items():
        per_run = [points(r) for r in group]
        xs = sorted({x for p in per_run for x in p})
        stats, lo, hi = [], [], []
        for x in xs:
            vals = [p[x] for p in per_run if p.get(x) is not None]
            stats.append(summarize(vals).mean)
            lo.append(min(vals) if vals else None)
            hi.append(max(vals) if vals else None)
        keep = [i for i, m in enumerate(stats) if m is not None]
        if not keep:
            continue
        x = [xs[i] for i in keep]
        k = len(ax.get_lines())
        line, = ax.plot(x, [stats[i] for i in keep], marker=MARKERS[k % len(MARKERS)],
                        linestyle=STYLES[k % len(STYLES)], markersize=7 - k % 3, label=f"{method} (n={len(group)})")
        if len(group) > 1 and len(x) == 1:  # a band needs two points: show min..max as an error bar
            ax.vlines(x, [lo[keep[0]]], [hi[keep[0]]], color=line.get_color(), alpha=0.5, linewidth=6)
        elif len(group) > 1:
            ax.fill_between(x, [lo[i] for i in keep], [hi[i] for i in keep], color=line.get_color(),
                            alpha=0.2, linewidth=0)
        drawn = True
    if drawn:
        ax.legend(fontsize="small")
    return drawn


def accuracy_figure(groups: dict[str, list[Run]], metric: str = "gen") -> Figure:
    fig, ax = _figure()
    points = lambda r: {model_index(m): value(r.row(m), "avg", metric) for m in r.models}  # noqa: E731
    if not _band_plot(ax, groups, points):
        _no_data(ax, "accuracy")
    models = models_of([r for g in groups.values() for r in g])
    ax.set_xticks([model_index(m) for m in models], models)
    ax.set_xlabel("model")
    ax.set_ylabel(f"average accuracy (%), {KINDS[metric]}")
    ax.set_title("Accuracy per model (mean over seeds, band = min..max)")
    return fig


def consistency_figure(groups: dict[str, list[Run]]) -> Figure:
    fig, ax = _figure()

    def points(r: Run) -> dict:
        return {row["iteration"]: value(row, "C") for row in r.rows
                if row.get("iteration") is not None and row.get("consistency")}

    if not _band_plot(ax, groups, points):
        _no_data(ax, "consistency rate")
    iters = sorted({x for g in groups.values() for r in g for x in points(r)})
    ax.set_xticks(iters)
    ax.set_xlabel("iteration")
    ax.set_ylabel("consistency rate C")
    ax.set_title("Consistency rate per iteration (mean over seeds, band = min..max)")
    return fig


def tau_figure(groups: dict[str, list[Run]]) -> Figure:
    fig, ax = _figure()
    per_method = {m: {} for m in groups}
    for method, group in groups.items():
        for r in group:
            for t, vals in taus(r).items():
                per_method[method].setdefault(t, []).extend(vals)
    iters = sorted({t for d in per_method.values() for t in d})
    width = 0.8 / max(len(groups), 1)
    drawn = False
    for k, (method, by_t) in enumerate(per_method.items()):
        ts = [t for t in iters if by_t.get(t)]
        if not ts:
            continue
        pos = [t - 0.4 + width * (k + 0.5) for t in ts]
        color = f"C{k % 10}"
        ax.boxplot([by_t[t] for t in ts], positions=pos, widths=width * 0.8, patch_artist=True, manage_ticks=False,
                   boxprops={"facecolor": color, "alpha": 0.5}, medianprops={"color": "black"})
        ax.plot([], [], color=color, linewidth=6, alpha=0.5, label=method)
        drawn = True
    if drawn:
        ax.legend(fontsize="small")
        ax.set_xlim(min(iters) - 0.6, max(iters) + 0.6)
        ax.set_ylim(-1.1, 1.1)
    else:
        _no_data(ax, "per-prompt tau")
    ax.set_xticks(iters)
    ax.set_xlabel("iteration")
    ax.set_ylabel("per-prompt tau")
    ax.set_title("Per-prompt rank correlation tau (seeds pooled)")
    return fig


def figures(runs: list[Run], metric: str = "gen") -> dict[str, Figure]:
    """File name -> figure, from the complete runs grouped by method."""
    groups = group_runs(runs)
    return {f"accuracy_{metric}.png": accuracy_figure(groups, metric), "consistency.png": consistency_figure(groups),
            "tau.png": tau_figure(groups)}


def write_plots(runs: list[Run], out: Path, metric: str = "gen") -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures(runs, metric).items():
        save_figure(fig, out / name)
        paths.append(out / name)
    return paths


def save_figure(fig: Figure, path: Path) -> None:
    """A PNG written whole or not at all (a kill mid-write leaves the previous file)."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)
