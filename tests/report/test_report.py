"""cream-table / cream-plot: run discovery, grouping, mean ± std over seeds, best marking, LaTeX/CSV output, plots."""
from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from cream import cli
from cream.report import plots, table
from cream.report import runs as runs_mod

BENCHES = ("arc_easy", "gsm8k")
SRLM, CREAM, SHARED = "C = 1", "CREAM (avg C)", table.SHARED  # the fixture's runs name no rewarder


def write_run(d: Path, overrides: list[str], seed: int, accs: dict[str, list[float]], cons: list[float | None],
              pairs: list[int | None], iterations: int = 1, n_rows: int | None = None, results: bool = True,
              taus: dict[int, list[float | None]] | None = None, loglik_shift: float = 0.1) -> Path:
    """A fake run dir: accs[bench][k] = accuracy of M_k; cons/pairs per model (None for M0, M1)."""
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides + [f"seed={seed}"]))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "pipeline": {"iterations": iterations}}))
    rows = []
    for k in range(iterations + 2):
        ev = {b: accs[b][k] for b in accs}
        ll = {b: accs[b][k] + loglik_shift for b in accs}
        c = None if cons[k] is None else {"mean": cons[k], "std": 0.1, "min": 0.0, "max": 1.0, "n": 16,
                                          "n_undefined": 0}
        rows.append({"model": f"M{k}", "iteration": None if k == 0 else k - 1, "consistency": c, "n_pairs": pairs[k],
                     "n_dropped": None if pairs[k] is None else 0, "reward_quality": None, "extraction": "lenient",
                     **family("eval", ev), **family("eval_acc_norm", ll), **family("eval_strict", {}),
                     **family("eval_acc", {})})
    if results:
        (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n_rows]))
    for t, vals in (taus or {}).items():
        (d / f"iter_{t}" / "consistency").mkdir(parents=True)
        (d / f"iter_{t}" / "consistency" / "consistency.jsonl").write_text("".join(
            json.dumps({"prompt_id": f"p{i}", "c": None if v is None else (v + 1) / 2, "tau": v,
                        "defined": v is not None}) + "\n"
            for i, v in enumerate(vals)))
    return d


N_ITEMS = 100  # questions per benchmark behind each fake accuracy


def se(p: float, n: int = N_ITEMS) -> float:
    return (max(p * (1 - p), 0.0) / (n - 1)) ** 0.5  # (fake accuracies + loglik_shift may pass 1)


def family(key: str, accs: dict[str, float]) -> dict:
    """A results row's keys for one accuracy family: per benchmark, stderr, average and its stderr."""
    ses = {b: se(a) for b, a in accs.items()}
    return {key: accs, f"{key}_stderr": ses, f"{key}_avg": statistics.mean(accs.values()) if accs else None,
            f"{key}_avg_stderr": (sum(v * v for v in ses.values()) ** 0.5 / len(ses)) if accs else None}


COMMON = ["debug=smoke", "hydra.launcher.timeout_min=5", "launcher=local", "data.dir=/x"]


@pytest.fixture
def sweep(tmp_path) -> Path:
    """SRLM x 3 seeds, CREAM x 3 seeds (CREAM better at M2), plus a short run and one without results."""
    root = tmp_path / "sweep"
    job = 0
    for reg, base in (("none", 0.30), ("cream_avg", 0.40)):
        for seed in (1, 2, 3):
            accs = {b: [0.20 + 0.01 * seed, 0.25 + 0.02 * seed + i * 0.05, base + 0.03 * seed + i * 0.1]
                    for i, b in enumerate(BENCHES)}
            write_run(root / str(job), COMMON + [f"regularizer={reg}"], seed, accs,
                      [None, None, 0.5 + 0.05 * seed + (reg != "none") * 0.2],
                      [None, None, 10 + seed], taus={1: [-1.0, 0.0, 0.5 * seed / 3, None, 1.0]})
            job += 1
    big = {b: [0.99, 0.99, 0.99] for b in BENCHES}
    write_run(root / str(job), COMMON + ["regularizer=cream_avg"], 4, big, [None, None, 0.99],
              [None, None, 99], n_rows=2)
    write_run(root / str(job + 1), COMMON + ["regularizer=none"], 5, big, [None, None, 0.99], [None, None, 99],
              results=False)
    return root


def md_rows(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """(method, model) -> {column header: cell text} from a printed Markdown table."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out, method = {}, None
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        method = cells[0] or method
        out[(method, cells[1])] = dict(zip(head, cells))
    return out


def file_values(root: Path, reg: str, model: str, col: str, key: str = "eval",
                complete_only: bool = True) -> list[float]:
    vals = []
    for d in runs_mod.find_run_dirs([root]):
        ov = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
        if f"regularizer={reg}" not in ov or not (d / "results.jsonl").is_file():
            continue
        rows = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()]
        if complete_only and len(rows) < 3:
            continue
        row = next(r for r in rows if r["model"] == model)
        vals.append(100 * row[key][col] if col in BENCHES else 100 * row[f"{key}_avg"] if col == "avg"
                    else row["consistency"]["mean"] if col == "C" else row["n_pairs"])
    return vals


def expect(vals: list[float], digits: int = 1) -> str:
    text = f"{statistics.mean(vals):.{digits}f}"
    if len(vals) >= 2:
        text += f" ± {statistics.stdev(vals):.{digits}f}"
    return text


def run_table(capsys, *argv) -> tuple[int, str, str]:
    """cream-table on ``argv``, with the generative accuracy unless a --metric is given (the default, auto, is
    acc_norm on these runs, which have log-likelihood accuracies)."""
    argv = [str(a) for a in argv]
    rc = cli.table(argv if "--metric" in argv else [*argv, "--metric", "gen"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_grouping_drops_seed_and_launcher_keys(sweep):
    runs = runs_mod.load_runs([sweep])
    assert len(runs) == 8
    groups = runs_mod.group_runs(runs)
    assert list(groups) == [SRLM, CREAM]
    assert [len(g) for g in groups.values()] == [3, 3]
    assert sorted(r.seed for r in groups[SRLM]) == [1, 2, 3]
    params = [runs_mod.resolved_params(r) for r in runs]
    assert all("seed" not in p and "launcher" not in p and "data.dir" not in p
               and not any(k.startswith("hydra.") for k in p)
               for p in params)


def test_readable_names():
    def names(*overrides, configs=None):
        rs = [runs_mod.Run(path=Path(f"/r{i}"), overrides=list(o), config=(configs or {}).get(i, {}))
              for i, o in enumerate(overrides)]
        runs_mod.name_methods(rs)
        return [r.method for r in rs]

    assert names(["regularizer=none", "seed=1"], ["regularizer=cream_avg", "seed=1"], ["regularizer=cream_dyn"],
                 ["regularizer=fixed"]) == ["C = 1", "CREAM (avg C)", "CREAM (per-pair C)", "fixed C = ?"]
    assert names(["rewarder=reward_model", "x=1"], ["rewarder=judge", "x=1"]) == ["reward model", "LLM-as-a-Judge"]
    assert names(["consistency=spearman"], ["consistency=toporder"], ["consistency=kendall"]) == [
        "Spearman rho", "top-order", "Kendall tau"]
    assert names(["loss=ipo"], ["loss=hinge"]) == ["loss=ipo", "loss=hinge"]  # no readable name: key=value
    assert names(["+loss=ipo", "regularizer=none"], ["+loss=ipo", "regularizer=cream_avg", "hydra.job.name=x"]) == [
        "C = 1", "CREAM (avg C)"]
    assert names(["regularizer=none", "dpo.lr=1e-4"], ["regularizer=none", "dpo.lr=5e-4"]) == ["dpo.lr=1e-4",
                                                                                               "dpo.lr=5e-4"]
    assert names(["regularizer=none", "consistency=spearman"], ["regularizer=cream_avg", "consistency=toporder"]) == [
        "C = 1, Spearman rho", "CREAM (avg C), top-order"]
    # C = 1 names the reward it is plain DPO on: "implicit reward, C = 1" is not the judge-based SRLM
    assert names(["rewarder=implicit", "regularizer=none"], ["rewarder=implicit", "regularizer=cream_avg"],
                 ["rewarder=judge", "regularizer=none"]) == [
        "implicit reward, C = 1", "implicit reward, CREAM (avg C)", "LLM-as-a-Judge, C = 1"]
    # from the resolved config, not the typed strings: a plain run (nothing typed) is what its config ran
    implicit = {"rewarder": {"_target_": "cream.rewarders.implicit.ImplicitRewarder"}}
    configs = {0: {**implicit, "regularizer": {"_target_": "cream.method.regularizers.DatasetConsistency"}},
               1: {**implicit, "regularizer": {"_target_": "cream.method.regularizers.NoRegularizer"}},
               2: {**implicit, "regularizer": {"_target_": "cream.method.regularizers.FixedConsistency", "c": 0.5}}}
    assert names([], ["experiment=smollm2_srlm"], ["regularizer=fixed"], configs=configs) == [
        "CREAM (avg C)", "implicit reward, C = 1", "fixed C = 0.5"]
    assert names(["seed=3"], configs={0: configs[0]}) == ["CREAM (avg C)"]  # one method: still named


def test_mean_std_match_statistics(sweep, capsys):
    rc, out, _ = run_table(capsys, sweep)
    assert rc == 0
    rows = md_rows(out)
    assert {m for m, _ in rows} == {SRLM, CREAM, SHARED}
    assert (SRLM, "M0") not in rows and (CREAM, "M1") not in rows  # M0 and M1 are the same for both: shown once
    for name, reg in ((SRLM, "none"), (CREAM, "cream_avg")):
        for model in ("M0", "M1", "M2"):
            cells = rows[(name if model == "M2" else SHARED, model)]
            assert cells["n"] == "3"
            for col, head in ((*BENCHES[:1], "arc_easy"), ("gsm8k", "gsm8k"), ("avg", "Avg")):
                assert cells[head].strip("*") == expect(file_values(sweep, reg, model, col))
        assert rows[(name, "M2")]["C"].strip("*") == expect(file_values(sweep, reg, "M2", "C"), 3)
        assert rows[(SHARED, "M0")]["C"] == "-"
    # the metric in the names: another --metric keeps them
    for name in ("table_gen.md", "table_gen.tex", "runs_gen.csv"):
        assert (sweep / name).stat().st_size > 0
    assert (sweep / "table_gen.md").read_text() == out
    assert "mean ± std over seeds" in out.splitlines()[0] and "(se" not in out and f'"{SHARED}"' in out.splitlines()[0]
    run_table(capsys, sweep, "--metric", "acc_norm")
    assert (sweep / "table_gen.md").read_text() == out and (sweep / "table_acc_norm.md").is_file()


def test_best_marked_per_model(sweep, capsys):
    _, out, _ = run_table(capsys, sweep)
    rows = md_rows(out)
    for head in ("arc_easy", "gsm8k", "Avg", "C"):
        assert rows[(CREAM, "M2")][head].startswith("**") and rows[(CREAM, "M2")][head].endswith("**")
        assert "**" not in rows[(SRLM, "M2")][head]
    assert all("**" not in c for c in rows[(CREAM, "M2")]["Pairs"])  # pairs kept is not ranked
    # same numbers at M0 for both methods: one row, nothing is best
    assert "**" not in rows[(SHARED, "M0")]["arc_easy"]
    _, tex, _ = run_table(capsys, sweep, "--format", "latex")
    assert r"\textbf{" in tex


def test_incomplete_listed_not_averaged(sweep, capsys):
    _, out, _ = run_table(capsys, sweep)
    tail = out.split("Incomplete runs")[1]
    assert f"`{sweep / '6'}`: 2 of 3 models in results.jsonl" in tail
    assert f"`{sweep / '7'}`: no results.jsonl" in tail
    assert "99" not in out.split("Incomplete runs")[0]
    assert md_rows(out)[(CREAM, "M2")]["n"] == "3"


def test_filter(sweep, capsys):
    _, out, _ = run_table(capsys, sweep, "--filter", "regularizer=none")
    rows = md_rows(out)
    assert {m for m, _ in rows} == {SRLM}  # named as in the unfiltered table
    assert all(c["n"] == "3" for c in rows.values())
    _, out, _ = run_table(capsys, sweep, "--filter", "regularizer=cream_avg", "--filter", "seed=2")
    rows = md_rows(out)
    assert len(rows) == 3 and all(c["n"] == "1" for c in rows.values())
    assert "std" not in out.splitlines()[0]  # one seed: no std over seeds ...
    d = next(d for d in runs_mod.find_run_dirs([sweep]) if "seed=2" in (d / ".hydra" / "overrides.yaml").read_text()
             and "regularizer=cream_avg" in (d / ".hydra" / "overrides.yaml").read_text())
    row = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()][2]
    assert "binomial standard error" in out.splitlines()[0]  # ... but the run's own standard error, said once
    for b in BENCHES:  # from results.jsonl
        assert rows[(CREAM, "M2")][b] == f"{100 * row['eval'][b]:.1f} ± {100 * se(row['eval'][b]):.1f}"
    avg_se = (se(row["eval"]["arc_easy"]) ** 2 + se(row["eval"]["gsm8k"]) ** 2) ** 0.5 / 2
    assert rows[(CREAM, "M2")]["Avg"] == f"{100 * row['eval_avg']:.1f} ± {100 * avg_se:.1f}"
    assert rows[(CREAM, "M2")]["Pairs"] == str(row["n_pairs"])  # a count: an integer
    assert rows[(CREAM, "M2")]["C"] == f"{row['consistency']['mean']:.3f}"  # C has no standard error
    assert "Incomplete" not in out
    rc, _, err = run_table(capsys, sweep, "--filter", "regularizer=nope")
    assert rc == 2 and "regularizer=nope" in err


def test_metric_loglik_and_columns(sweep, capsys):
    _, out, _ = run_table(capsys, sweep, "--metric", "acc_norm", "--columns", "gsm8k,avg")
    rows = md_rows(out)
    assert list(rows[(SHARED, "M1")]) == ["Method", "Model", "gsm8k", "Avg", "n"]
    for name, reg in ((SRLM, "none"), (CREAM, "cream_avg")):
        assert rows[(name, "M2")]["gsm8k"].strip("*") == expect(file_values(sweep, reg, "M2", "gsm8k", "eval_acc_norm"))
        assert rows[(name, "M2")]["gsm8k"].strip("*") != expect(file_values(sweep, reg, "M2", "gsm8k", "eval"))
    rc, _, err = run_table(capsys, sweep, "--columns", "nope")
    assert rc == 2 and "nope" in err and "arc_easy" in err


def check_latex(tex: str) -> None:
    assert tex.count(r"\begin{tabular}") == 1 == tex.count(r"\end{tabular}")
    assert (tex.index(r"\begin{tabular}") < tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
            < tex.index(r"\end{tabular}"))
    ncols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    body = [ln for ln in tex.splitlines() if ln.rstrip().endswith(r"\\")]
    assert len(body) >= 2
    for ln in body:
        assert len(re.findall(r"(?<!\\)&", ln)) == ncols - 1, ln
    for ln in tex.splitlines():
        if not ln.startswith("%"):
            assert not re.search(r"(?<!\\)[_%#]", ln), ln
            assert "±" not in ln


def test_latex_structure(sweep, capsys):
    rc, tex, _ = run_table(capsys, sweep, "--format", "latex")
    assert rc == 0 and tex == (sweep / "table_gen.tex").read_text()
    check_latex(tex)
    assert r"arc\_easy" in tex and r"$\pm$" in tex
    assert table.latex_escape("a_b 50% R&D #1") == r"a\_b 50\% R\&D \#1"


def test_csv_rows(sweep, capsys, tmp_path):
    rc, text, _ = run_table(capsys, sweep, "--format", "csv", "--out", tmp_path / "o")
    assert rc == 0 and (tmp_path / "o" / "runs_gen.csv").read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6 * 3 + 2  # complete runs x 3 models + the short run's 2 rows
    assert set(rows[0]) >= {"run_dir", "method", "seed", "model", *BENCHES, "avg", "C", "pairs"}
    first = [r for r in rows if r["run_dir"] == str(sweep / "0")]
    assert [r["model"] for r in first] == ["M0", "M1", "M2"] and first[0]["method"] == SRLM and first[0]["seed"] == "1"
    assert float(first[2]["arc_easy"]) == pytest.approx(file_values(sweep, "none", "M2", "arc_easy")[0])
    row = [json.loads(x) for x in (sweep / "0" / "results.jsonl").read_text().splitlines()][2]
    assert float(first[2]["arc_easy_se"]) == pytest.approx(100 * se(row["eval"]["arc_easy"]))
    assert float(first[2]["avg_se"]) == pytest.approx(100 * row["eval_avg_stderr"])


def test_no_runs_exit_2(tmp_path, capsys):
    rc, out, err = run_table(capsys, tmp_path / "empty", tmp_path / "missing")
    assert rc == 2 and out == ""
    assert "no runs found" in err and str(tmp_path / "empty") in err and str(tmp_path / "missing") in err
    assert cli.plot([str(tmp_path / "empty")]) == 2


def png_size(path: Path) -> tuple[int, int]:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    return img.shape[1], img.shape[0]


def check_plots(paths: list[Path], out: Path, metric: str = "gen") -> None:
    assert [p.name for p in paths] == [f"accuracy_{metric}.png", "consistency.png", "tau.png"]
    for p in paths:
        assert p.parent == out and p.stat().st_size > 0
        assert png_size(p) == (round(plots.FIGSIZE[0] * plots.DPI), round(plots.FIGSIZE[1] * plots.DPI))


def test_plots_synthetic(sweep, tmp_path):
    runs = runs_mod.load_runs([sweep])
    figs = plots.figures(runs)
    acc = figs["accuracy_gen.png"].axes[0]
    assert acc.get_xlabel() == "model" and acc.get_ylabel() == "average accuracy (%), generative, eval.extraction rules"
    assert len({(ln.get_marker(), ln.get_linestyle()) for ln in acc.get_lines()}) == 2  # coinciding lines stay apart
    assert [t.get_text() for t in acc.get_xticklabels()] == ["M0", "M1", "M2"]
    assert [ln.get_label() for ln in acc.get_lines()] == [f"{SRLM} (n=3)", f"{CREAM} (n=3)"]
    srlm = acc.get_lines()[0].get_ydata()
    assert list(srlm) == pytest.approx([statistics.mean(file_values(sweep, "none", f"M{k}", "avg")) for k in range(3)])
    cons = figs["consistency.png"].axes[0]
    assert cons.get_xlabel() == "iteration" and "consistency" in cons.get_ylabel()
    assert cons.get_lines()[1].get_ydata()[0] == pytest.approx(
        statistics.mean(file_values(sweep, "cream_avg", "M2", "C")))
    tau = figs["tau.png"].axes[0]
    assert tau.get_xlabel() == "iteration" and "tau" in tau.get_ylabel()
    assert [t.get_text() for t in tau.get_legend().get_texts()] == [SRLM, CREAM]
    out = tmp_path / "plots"
    assert cli.plot([str(sweep), "--out", str(out)]) == 0
    check_plots(plots.write_plots(runs, out), out)


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory) -> Path:
    """A real 2x2 multirun of the smoke config (regularizer none/cream_avg x seed 1/2)."""
    cwd = tmp_path_factory.mktemp("report_sweep")
    sweep = cwd / "sweep"
    run_cli(["-m", "debug=smoke", "regularizer=none,cream_avg", "seed=1,2", f"hydra.sweep.dir={sweep}"], cwd=cwd,
            timeout=1800, env={"CREAM_PROGRESS": "0"})
    return sweep


@pytest.mark.slow
def test_table_and_plots_on_real_sweep(smoke_sweep, tmp_path):
    proc = run_cli([str(smoke_sweep), "--metric", "gen"], cwd=tmp_path, script="cream-table")
    rows = md_rows(proc.stdout)
    srlm = "implicit reward, C = 1"  # named from the resolved config: the smoke runs' rewarder is the implicit one
    assert {m for m, _ in rows} == {srlm, CREAM, SHARED}
    results = {}
    for d in runs_mod.find_run_dirs([smoke_sweep]):
        ov = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
        reg = next(o.split("=")[1] for o in ov if o.startswith("regularizer="))
        results.setdefault(reg, []).append([json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()])
    assert sorted(len(v) for v in results.values()) == [2, 2]
    for name, reg in ((srlm, "none"), (CREAM, "cream_avg")):
        for k, model in enumerate(("M0", "M1", "M2")):
            cells = rows[(name if model == "M2" else SHARED, model)]
            assert cells["n"] == "2"
            rs = [res[k] for res in results[reg]]
            assert all(r["model"] == model for r in rs)
            for b in rs[0]["eval"]:
                assert cells[b].strip("*") == expect([100 * r["eval"][b] for r in rs])
            assert cells["Avg"].strip("*") == expect([100 * r["eval_avg"] for r in rs])
            if model == "M2":
                assert cells["C"].strip("*") == expect([r["consistency"]["mean"] for r in rs], 3)
                pairs = [r["n_pairs"] for r in rs]
                assert cells["Pairs"].split(" ")[0] == table._num("pairs", statistics.mean(pairs))
    check_latex((smoke_sweep / "table_gen.tex").read_text())
    assert len(list(csv.DictReader(io.StringIO((smoke_sweep / "runs_gen.csv").read_text())))) == 4 * 3
    out = tmp_path / "plots"
    proc = run_cli([str(smoke_sweep), "--out", str(out)], cwd=tmp_path, script="cream-plot")
    paths = [Path(p) for p in proc.stdout.split()]
    check_plots(paths, out, "acc_norm")  # the default metric: acc_norm, as the smoke runs scored log-likelihoods
    figs = plots.figures(runs_mod.load_runs([smoke_sweep]))
    assert [ln.get_label() for ln in figs["accuracy_gen.png"].axes[0].get_lines()] == [f"{srlm} (n=2)",
                                                                                       f"{CREAM} (n=2)"]
    assert figs["consistency.png"].axes[0].get_xlabel() == "iteration"
