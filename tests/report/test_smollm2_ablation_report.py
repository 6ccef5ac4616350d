"""The ablation study's scripts (experiments/smollm2_ablation/analysis.py, procedure.py) on hand-built inputs."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT, compose, cream_table_printed, run_script
from cream.artifacts import config_hash

HERE = ROOT / "experiments" / "smollm2_ablation"


def _analysis():
    return run_script(HERE / "analysis.py")


def _procedure():
    return run_script(HERE / "procedure.py")


def _results(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.joinpath("results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _row(model: str, acc: float, t: int | None = None, c: float | None = None, diagnostics: dict | None = None) -> dict:
    return {"model": model, "iteration": t, "consistency": None if c is None else {"mean": c},
            "eval_acc_norm": {"arc_easy": acc}, "diagnostics": diagnostics}


def _arm(path: Path, m4: float, c3: float) -> None:
    _results(path, [_row("M0", 0.40), _row("M1", 0.42, 0), _row("M2", 0.43, 1, 1.0), _row("M3", 0.44, 2, 0.8),
                    _row("M4", m4, 3, c3)])


def test_paired_contrast_with_its_t_interval(tmp_path):
    for seed, gain in ((0, 0.01), (1, 0.02), (2, 0.03)):  # B - A at M4: +1, +2, +3 points; C at t = 3: -0.01 ...
        _arm(tmp_path / f"a_srlm_s{seed}", 0.45, 0.9)
        _arm(tmp_path / f"b_cream_s{seed}", 0.45 + gain, 0.9 - gain)
    _arm(tmp_path / "c_cream_controls_s0", 0.5, 0.9)  # no D run: C - D has no row
    lines = _analysis().paired(tmp_path).splitlines()
    # d = 1, 2, 3: mean 2, s = 1; half-width t_{0.975, 2} / sqrt 3 = 4.3027 / 1.7321 = 2.484; p = 1 - sqrt(12 / 14)
    p = 1 - (12 / 14) ** 0.5
    assert (f"| B - A (primary) | ARC-Easy acc_norm, M4 | s0 +1.0, s1 +2.0, s2 +3.0 | +2.0 | [-0.5, +4.5] | {p:.2f} "
            "| 3 |") in lines
    assert (f"| B - A (primary) | C, t = 3 | s0 -0.010, s1 -0.020, s2 -0.030 | -0.020 | [-0.045, +0.005] | {p:.2f} "
            "| 3 |") in lines
    assert ("| B - A (primary) | C, t = 2 | s0 +0.000, s1 +0.000, s2 +0.000 | +0.000 | [+0.000, +0.000] | - "
            "| 3 |") in lines
    assert not any(line.startswith("| C - D") for line in lines)
    # C - A, descriptive, in seed 0 alone: +5 points at M4 (no interval from one seed)
    assert "| C - A (descriptive) | ARC-Easy acc_norm, M4 | s0 +5.0 | +5.0 | [-, -] | - | 1 |" in lines
    assert "| C - B (descriptive) | ARC-Easy acc_norm, M4 | s0 +4.0 | +4.0 | [-, -] | - | 1 |" in lines
    assert len(lines) == 2 + 3 + 2 * 3  # the rows with values: C at t = 2 and 3, ARC-Easy acc_norm


def test_mcnemar_counts_the_discordant_questions():
    x = {f"q{i}": c for i, c in enumerate([True] * 6 + [False, True, False, False])}
    y = {f"q{i}": c for i, c in enumerate([False] * 6 + [True, True, False, False])}
    assert _analysis().mcnemar(x, y) == (6, 1, pytest.approx(2 * 8 / 2 ** 7))  # exact, two-sided
    with pytest.raises(SystemExit):
        _analysis().mcnemar(x, {"q0": True})


def test_questions_per_benchmark_from_the_run_dirs(tmp_path):
    for run, right in (("b_cream_s0", [True, True, False]), ("a_srlm_s0", [False, True, True])):
        path = tmp_path / run / "eval" / "M4"
        path.mkdir(parents=True)
        path.joinpath("predictions_loglik.jsonl").write_text("".join(
            json.dumps({"benchmark": b, "id": f"{b}{i}", "acc_norm": {"correct": c}}) + "\n"
            for b in ("arc_easy", "arc_challenge") for i, c in enumerate(right if b == "arc_easy" else [True] * 3)))
        path.joinpath("predictions.jsonl").write_text("".join(
            json.dumps({"benchmark": "arc_easy", "id": f"q{i}", "strict": {"correct": c},
                        "lenient": {"correct": not c}}) + "\n"
            for i, c in enumerate(right)))
    lines = _analysis().questions(tmp_path).splitlines()
    # ARC-Easy: q0 only B, q2 only A (1 / 1, p = 1); ARC-Challenge: no discordant question (p = 1)
    assert lines[2] == "| B - A | s0 | 1 / 1 | 1 | 0 / 0 | 1 | 1 / 1 | 1 | 1 / 1 | 1 |"
    assert len(lines) == 3
    # an earlier model on the command line: M2's files, where B answers q0-q2 and A none (3 / 0, p = 2 / 8)
    for run, right in (("b_cream_s0", True), ("a_srlm_s0", False)):
        path = tmp_path / run / "eval" / "M2"
        path.mkdir()
        for name, key in (("predictions_loglik.jsonl", "acc_norm"), ("predictions.jsonl", "strict")):
            path.joinpath(name).write_text("".join(json.dumps(
                {"benchmark": "arc_easy", "id": f"q{i}", key: {"correct": right}, "lenient": {"correct": right}}) + "\n"
                for i in range(3)))
    lines = _analysis().main(["questions", str(tmp_path), "M2"]).splitlines()
    assert lines[2] == "| B - A | s0 | 3 / 0 | 0.25 | 0 / 0 | 1 | 3 / 0 | 0.25 | 3 / 0 | 0.25 |"


def test_answers_show_a_model_that_gives_one_letter(tmp_path):
    def write(run: str, model: str, answers: list[str | None], gold: str) -> None:
        path = tmp_path / run / "eval" / model
        path.mkdir(parents=True)
        path.joinpath("predictions.jsonl").write_text("".join(json.dumps(
            {"benchmark": "arc_easy", "id": f"q{i}", "strict": {"answer": a, "correct": a == g}}) + "\n"
            for i, (a, g) in enumerate(zip(answers, gold))) + json.dumps(
            {"benchmark": "arc_challenge", "id": "x", "strict": {"answer": "D", "correct": True}}) + "\n")
    write("b_cream_s0", "M2", ["C"] * 6 + ["A", None], "CCABDDAB")
    write("b_cream_s0", "M10", [None] * 3, "ABC")
    write("a_srlm_s0", "M2", ["A", "B", "B", "A"], "ABCD")  # a tie between A and B: the first letter
    lines = _analysis().main(["answers", str(tmp_path)]).splitlines()
    assert lines[2:] == ["| a_srlm_s0 | M2 | 4 | 0 | A | 50.0 | 50.0 | 50.0 |",
                         # C for 6 of 8 (75%), right on 2 of them (gold C); of the others, A right, None wrong
                         "| b_cream_s0 | M2 | 8 | 1 | C | 75.0 | 33.3 | 50.0 |",
                         "| b_cream_s0 | M10 | 3 | 3 | - | - | - | - |"]


def test_pair_answers_count_the_letters_each_side_ends_on(tmp_path):
    first = [("x\nAnswer: A", "Answer: C"), ("The answer is B.", "loops loops"), ("Answer: A", "Answer: C")]
    for t, pairs in ((1, first), (10, [("Answer: D", "Answer: (b)")])):
        path = tmp_path / "b_cream_s1" / f"iter_{t}" / "pairs"
        path.mkdir(parents=True)
        path.joinpath("pairs.jsonl").write_text("".join(json.dumps({"chosen": c, "rejected": r}) + "\n"
                                                        for c, r in pairs))
    lines = _analysis().main(["pair-answers", str(tmp_path)]).splitlines()
    assert lines[0] == "| run | t | pairs | A | B | C | D | E | no answer |"
    assert lines[2:] == ["| b_cream_s1 | 1 | 3 | 2 / 0 | 1 / 0 | 0 / 2 | 0 / 0 | 0 / 0 | 0 / 1 |",
                         "| b_cream_s1 | 10 | 1 | 0 / 0 | 0 / 1 | 0 / 0 | 1 / 0 | 0 / 0 | 0 / 0 |"]


def test_mechanism_table_and_mean_auc(tmp_path):
    d1 = {"auc_c": 0.6, "auc_c_lo": 0.45, "auc_c_hi": 0.75, "truncation_rate": 0.125, "mean_length": 40.4,
          "repetition_rate": 0.05, "distinct_2": 0.812, "chosen_length": 52.0, "rejected_length": 30.0,
          "good_pairs": 0.2, "bad_pairs": 0.175, "other_pairs": 0.625, "n_verifiable": 38}
    for seed, auc in ((0, 0.6), (1, 0.7)):
        _results(tmp_path / f"c_cream_controls_s{seed}",
                 [_row("M1", 0.4, 0), _row("M2", 0.4, 1, 1.0, {**d1, "auc_c": auc})])
    lines = _analysis().mechanism(tmp_path).splitlines()
    assert lines[2] == ("| C | s0 | 1 | 0.60 [0.45, 0.75] | 0.125 | 40 | 0.050 | 0.812 | 52 | 30 "
                        "| 0.200 | 0.175 | 0.625 | 38 |")
    assert lines[-1] == "| C | 1 | 0.65 | 2 |"


def test_progress_lists_every_evaluated_model_of_every_run(tmp_path):
    m2 = {"model": "M2", "iteration": 1, "consistency": {"mean": 0.2978}, "n_pairs": 250,
          "eval_acc_norm": {"arc_easy": 0.458, "arc_challenge": 0.268},
          "eval_acc_norm_stderr": {"arc_easy": 0.0102, "arc_challenge": 0.0129},
          "eval_lenient": {"arc_easy": 0.2233}, "eval_lenient_stderr": {"arc_easy": 0.0241}}
    _results(tmp_path / "a_srlm_s1", [{"model": "M0", "iteration": None, "consistency": None, "n_pairs": None,
                                       "eval_acc_norm": {"arc_easy": 0.5}, "eval_acc_norm_stderr": {"arc_easy": 0.01}},
                                      m2])
    _results(tmp_path / "select_s0", [{"model": "M0"}])  # not an arm's run dir: left out
    lines = _analysis().progress(tmp_path).splitlines()
    assert lines[0].startswith("| run | model | ARC-Easy acc_norm | ARC-Challenge acc_norm |")
    assert lines[2] == "| a_srlm_s1 | M0 | 50.0 ± 1.0 | - | - | - | - | - | - |"
    assert lines[3] == "| a_srlm_s1 | M2 | 45.8 ± 1.0 | 26.8 ± 1.3 | - | 22.3 ± 2.4 | - | 0.298 | 250 |"
    assert len(lines) == 4


def test_the_page_quotes_the_analyses_on_the_committed_runs():
    """README.md's tables are what the scripts print today on every committed folder of runs: runs/ (collect.sh's
    copies), attempt_1/ and attempt_2/ (the lost attempts' summaries, PLAN.md section 12, items 7 and 15): a table
    cannot go stale when a run is added or a summary changes."""
    page = (HERE / "README.md").read_text()
    folders = [HERE / name for name in ("runs", "attempt_1", "attempt_2")
               if any((HERE / name).glob("*_s*/results.jsonl"))]
    assert HERE / "attempt_1" in folders and HERE / "attempt_2" in folders
    assert _analysis().progress(HERE / "attempt_1").count("\n") >= 3
    for runs in folders:
        costs = run_script(ROOT / "experiments" / "smollm2" / "costs.py").main(runs)
        for name, printed in (("progress", _analysis().progress(runs)), ("mechanism", _analysis().mechanism(runs)),
                              ("costs.py", costs), ("paired", _analysis().paired(runs)),
                              ("answers", _analysis().answers(runs))):
            assert printed.count("\n") < 2 or printed in page, \
                f"README.md does not quote {name}'s table on {runs.name}/:\n{printed}"


@pytest.mark.parametrize("metric", ["acc_norm", "lenient"])
def test_the_page_quotes_cream_table_on_the_committed_runs(metric, tmp_path, capsys):
    printed = cream_table_printed("experiments/smollm2_ablation/runs", metric, tmp_path, capsys)
    assert printed.count("| M4 ") >= 1
    assert printed in (HERE / "README.md").read_text(), f"README.md does not quote cream-table --metric {metric}:\n" \
        + printed


def test_plots_draw_the_mean_over_seeds_per_arm(tmp_path):
    for seed, c3 in ((0, 0.8), (1, 0.6)):
        _arm(tmp_path / f"a_srlm_s{seed}", 0.45, c3)
    figs = _analysis().figures(tmp_path)
    assert sorted(figs) == ["accuracy.png", "consistency.png", "repetition.png"]
    line = figs["consistency.png"].axes[0].lines[0]
    assert list(line.get_xdata()) == [1, 2, 3] and list(line.get_ydata()) == pytest.approx([1.0, 0.8, 0.7])
    acc = figs["accuracy.png"].axes[0].lines[0]
    assert list(acc.get_xdata()) == [0, 1, 2, 3, 4] and list(acc.get_ydata()) == pytest.approx([40, 42, 43, 44, 45])
    assert len(figs["repetition.png"].axes[0].lines) == 0  # no diagnostics in these rows: nothing drawn
    assert all(t == int(t) for t in figs["accuracy.png"].axes[0].get_xticks())  # M_k: no "M1.5" tick
    paths = _analysis().write_plots(tmp_path, tmp_path / "png")
    assert [p.read_bytes()[:4] for p in paths] == [b"\x89PNG"] * 3


def _dpo(run: Path, weights: list[float], iterations: int = 3) -> None:
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(f"pipeline:\n  iterations: {iterations}\n")
    for t, w in enumerate(weights, 1):
        (run / f"iter_{t}" / "dpo").mkdir(parents=True)
        (run / f"iter_{t}" / "dpo" / "manifest.json").write_text(json.dumps({"summary": {"mean_weight": w}}))


def test_arm_e_constant_is_the_mean_of_arm_c_weights_from_t_2(tmp_path):
    _dpo(tmp_path / "c_cream_controls_s0", [1.0, 0.8, 0.9])
    _dpo(tmp_path / "c_cream_controls_s1", [1.0, 0.7, 0.6])
    assert _procedure().fixed_c(tmp_path, ["0", "1"]) == 0.75  # (0.8 + 0.9 + 0.7 + 0.6) / 4; t = 1 left out
    _dpo(tmp_path / "c_cream_controls_s2", [1.0, 0.8])  # 2 of 3 DPO steps: not complete
    with pytest.raises(SystemExit, match="2 of 3 DPO steps"):
        _procedure().fixed_c(tmp_path, ["0", "1", "2"])


def _candidate(root: Path, sft: str, dpo: str, m1: float, se: float, m2: float, loops: int, n: int = 100) -> None:
    run = root / f"sft{sft}_dpo{dpo}"
    _results(run, [{"model": "M1", "eval_acc_norm": {"arc_easy": m1}, "eval_acc_norm_stderr": {"arc_easy": se}},
                   {"model": "M2", "eval_acc_norm": {"arc_easy": m2}}])
    (run / "eval" / "M2").mkdir(parents=True, exist_ok=True)
    outputs = ["x\nAnswer: B\nAnswer: B\nAnswer: B"] * loops + ["The answer is B.\nAnswer: B"] * (n - loops)
    (run / "eval" / "M2" / "predictions.jsonl").write_text("".join(json.dumps({"output": o}) + "\n" for o in outputs))


def test_selection_rule(tmp_path):
    proc = _procedure()
    _candidate(tmp_path, "1e-5", "1e-6", 0.44, 0.02, 0.44, 0)
    _candidate(tmp_path, "3e-6", "1e-6", 0.44, 0.02, 0.45, 0)
    assert proc.select_sft(tmp_path) == "1e-5"  # equal M1 accuracy: the larger lr
    _candidate(tmp_path, "3e-6", "1e-6", 0.46, 0.02, 0.45, 0)
    assert proc.select_sft(tmp_path) == "3e-6"
    # 1e-5 loses 2.1 points > one se (2.0): out; 3e-6 loops on 4 of 100 (< 5%) and loses 1.9: in
    _candidate(tmp_path, "3e-6", "3e-6", 0.46, 0.02, 0.441, 4)
    _candidate(tmp_path, "3e-6", "1e-5", 0.46, 0.02, 0.439, 0)
    table = proc.lr_table(tmp_path, "3e-6")
    assert [r["passes"] for r in table] == [True, True, False] and table[1]["looping"] == 0.04
    assert proc.select_lr(table) == "3e-6"
    _candidate(tmp_path, "3e-6", "3e-6", 0.46, 0.02, 0.47, 5)  # 5 of 100 loop: not below 5%
    assert proc.select_lr(proc.lr_table(tmp_path, "3e-6")) == "1e-6"
    assert proc.select_lr([{"lr": lr, "passes": False} for lr in ("1e-6", "3e-6", "1e-5")]) == "1e-6"


def test_a_stage_is_shared_when_its_config_matches_and_its_inputs_are_shared(tmp_path):
    def stage(name, deps, config):
        return SimpleNamespace(name=name, deps=deps, config=config)

    stages = [stage("base", [], {"m": 1}), stage("sft", ["base"], {"lr": 2}), stage("iter_1/sample", ["sft"], {"n": 5}),
              stage("iter_1/dpo", ["iter_1/sample"], {"reg": "none"}), stage("eval/M2", ["iter_1/dpo"], {"e": 1})]
    src = {"base": {"m": 1}, "sft": {"lr": 2}, "iter_1/sample": {"n": 5}, "iter_1/dpo": {"reg": "cream"},
           "eval/M2": {"e": 1}}
    for name, config in src.items():
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "manifest.json").write_text(json.dumps({"config_hash": config_hash(config)}))
    # eval/M2 has the same config, but its input (the DPO model) is not shared
    assert _procedure().shareable(tmp_path, stages) == ["base", "sft", "iter_1/sample"]


def test_arms_a_and_b_share_every_stage_up_to_iteration_1s_pairs():
    proc = _procedure()
    common = ["sft.lr=1e-5", "dpo.lr=3e-6", "data.dir=/data", "seed=1"]
    a = {s.name: s.config for s in proc._stages(["experiment=smollm2_ablation_a_srlm", *common])}
    b = {s.name: s.config for s in proc._stages(["experiment=smollm2_ablation_b_cream", *common])}
    same = [name for name in a if a[name] == b[name]]
    assert same[:8] == ["base", "eval/M0", "sft", "eval/M1", "iter_1/sample", "iter_1/reward", "iter_1/consistency",
                        "iter_1/pairs"]
    assert "iter_1/dpo" not in same  # the regularizer; everything after depends on it


def test_the_shared_settings_are_the_plans():
    cfg = compose(["experiment=smollm2_ablation_a_srlm"])
    assert (cfg.data.n_seed, cfg.data.n_prompts, cfg.sampling.n, cfg.sampling.temperature, cfg.sampling.top_p) == (
        128, 256, 5, 0.8, 0.95)
    assert cfg.sampling.max_new_tokens >= 256 and cfg.pipeline.iterations == 3
    assert (cfg.sft.epochs, cfg.dpo.epochs, cfg.sft.batch_size, cfg.dpo.batch_size) == (2, 1, 8, 8)
    assert list(cfg.eval.benchmarks) == ["arc_easy", "arc_challenge"] and cfg.eval.limit is None
    assert cfg.eval.generate_limit >= 300 and cfg.eval.splits.arc_easy == cfg.eval.splits.arc_challenge == "test"
    select = compose(["experiment=smollm2_ablation_select"])
    assert select.eval.splits.arc_easy == "validation" and list(select.eval.benchmarks) == ["arc_easy"]
    assert select.regularizer._target_.endswith("NoRegularizer") and select.pipeline.iterations == 1
    # the selection runs arm A's training: the same config but the iterations and the evaluation
    for key in ("data", "sampling", "sft", "dpo", "model", "regularizer", "rewarder", "loss", "consistency"):
        assert select[key] == cfg[key], key
