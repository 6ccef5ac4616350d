"""``results.jsonl``: one row per evaluated model, and the tables printed at the end of a run.

A row of a trained model M_{t+1} also carries iteration t's ``consistency`` summary, ``n_pairs``, ``n_dropped``,
``reward_quality`` and ``diagnostics`` (``cream.report.diagnostics.DIAGNOSTICS``: samples, pair lengths, good/bad
pairs and the AUC of C; None for M0 and M1).

The accuracy keys of a row (and of ``eval/M<k>/result.json``) are the ``FAMILIES`` of
``cream.evaluation.families``, each with its ``_stderr``, ``_avg`` and ``_avg_stderr``.
"""
from __future__ import annotations

from cream import artifacts
from cream.evaluation.families import FAMILIES, RESULT_KEYS  # noqa: F401  (FAMILIES: cream-eval reads it from here)
from cream.paths import eval_stage, iteration_stage


def _row(ctx, k: int, done: dict[str, dict]) -> dict:
    ev = done[eval_stage(k)]["summary"]
    row = {"model": f"M{k}", "iteration": None if k == 0 else k - 1, "consistency": None, "n_pairs": None,
           "n_dropped": None, "reward_quality": None, "diagnostics": None}
    if k >= 2:
        c = done.get(iteration_stage("consistency", k - 1), {}).get("summary")
        p = done.get(iteration_stage("pairs", k - 1), {}).get("summary")
        if c:
            row["consistency"] = {key: c.get(key) for key in ("mean", "std", "min", "max", "n", "n_undefined")}
        if p:
            row["n_pairs"], row["n_dropped"] = p["n_pairs"], p["n_dropped"]
            row["reward_quality"] = p.get("reward_quality")
            row["diagnostics"] = p.get("diagnostics")
    if k == 1 and (done.get("sft", {}).get("summary") or {}).get("skipped"):
        row["note"] = "sft skipped: M1 = M0"
    return row | {"extraction": ev.get("extraction")} | {key: ev.get(key) for key in RESULT_KEYS}


def write_results(ctx, done: dict[str, dict]) -> list[dict]:
    rows = [_row(ctx, k, done) for k in range(ctx.iterations + 2) if eval_stage(k) in done]
    artifacts.write_jsonl(ctx.paths.results, rows)
    return rows


def pct(x, se=None) -> str:
    """An accuracy in %, with its standard error when there is one: "45.0 ± 3.5"."""
    if x is None:
        return "-"
    return f"{100 * x:.1f}" + ("" if se is None else f" ± {100 * se:.1f}")


def print_results(rows: list[dict]) -> None:
    benches = list(rows[0].get("eval") or rows[0].get("eval_acc_norm") or {}) if rows else []
    avgs = [("avg", "eval"), ("strict", "eval_strict"), ("official", "eval_official"), ("acc", "eval_acc"),
            ("acc_norm", "eval_acc_norm")]
    head = ["model"] + benches + [name for name, _ in avgs] + ["C", "pairs"]
    lines = [head]
    for r in rows:
        c = r["consistency"]["mean"] if r["consistency"] else None
        lines.append([r["model"],
                      *(pct((r.get("eval") or {}).get(b), (r.get("eval_stderr") or {}).get(b)) for b in benches),
                      *(pct(r.get(f"{key}_avg"), r.get(f"{key}_avg_stderr")) for _, key in avgs),
                      "-" if c is None else f"{c:.3f}", "-" if r["n_pairs"] is None else str(r["n_pairs"])])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    fmt = lambda line: "| " + " | ".join(v.ljust(w) for v, w in zip(line, widths)) + " |"  # noqa: E731
    extraction = rows[0].get("extraction") if rows else None
    print(f"\nResults (accuracy % ± standard error; per benchmark and avg: generative, {extraction or 'lenient'} "
          "extraction; strict/official: generative averages; acc/acc_norm: lm-eval log-likelihood averages):")
    print(fmt(lines[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines[1:]:
        print(fmt(line))
    for r in rows:
        if r.get("note"):
            print(f"{r['model']}: {r['note']}")


def print_timings(done: dict[str, dict], ran: dict[str, float]) -> None:
    """Wall time and peak memory per stage (peak RSS of this process; peak GPU memory when one was used)."""
    total = sum(ran.values())
    gpu = any("peak_gpu_mb" in m.get("memory", {}) for m in done.values())
    print(f"\nWall time and peak memory by stage ({total:.1f} s this run; 'skipped' = complete from an earlier run):")
    for name, manifest in done.items():
        s, mem = ran[name], manifest.get("memory", {})
        when = "skipped" if s == 0 else f"{s:7.1f} s  {100 * s / max(total, 1e-9):5.1f}%"
        rss = f"  RSS {mem['peak_rss_mb'] / 1024:5.2f} GB" if "peak_rss_mb" in mem else ""
        gpu_mb = f"  GPU {mem['peak_gpu_mb'] / 1024:5.2f} GB" if gpu and "peak_gpu_mb" in mem else ""
        print(f"  {name:<20} {when:<17}{rss}{gpu_mb}")
