"""cream.report.diagnostics: every per-iteration diagnostic against hand-computed values."""
from __future__ import annotations

import pytest

from cream.report.diagnostics import (
    DIAGNOSTICS,
    auc,
    bootstrap_auc,
    diagnostics,
    distinct_n,
    pair_kind,
    repeats,
    repetition_rate,
)


def test_repetition_line_or_ngram_three_times():
    assert repeats("Answer: A\nAnswer: A\n  Answer: A  \n")  # one line 3 times (stripped)
    assert not repeats("Answer: A\nAnswer: A\nAnswer: B")  # twice only
    assert repeats("so the answer is so the answer is so the answer is")  # the 4-gram "so the answer is" x3
    assert not repeats("so the answer is so the answer is")  # x2
    assert not repeats("\n\n\n")  # empty lines do not count
    assert repetition_rate(["a\na\na", "b c d e", "x y z w x y z w x y z w", "q"]) == 0.5
    assert repetition_rate([]) is None


def test_distinct_2_by_hand():
    # "a b a b": bigrams (a b) (b a) (a b); "a b c": (a b) (b c) -> 5 bigrams, distinct {ab, ba, bc} = 3
    assert distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)
    assert distinct_n(["one"], 2) is None


def test_pair_kinds():
    assert pair_kind(True, False) == "good"
    assert pair_kind(False, True) == "bad"
    assert pair_kind(True, True) == pair_kind(False, False) == "other"


def test_auc_by_hand_and_ties():
    # positives (0.9, 0.6), negatives (0.6, 0.2): comparisons 0.9>0.6, 0.9>0.2, 0.6=0.6 (1/2), 0.6>0.2 -> 3.5/4
    assert auc([0.9, 0.6], [0.6, 0.2]) == pytest.approx(0.875)
    assert auc([0.1], [0.5]) == 0.0
    assert auc([], [0.5]) is None and auc([0.5], []) is None


def test_auc_against_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics")
    pos, neg = [0.9, 0.6, 0.55, 0.3, 0.75], [0.6, 0.2, 0.5, 0.55]
    expected = sklearn.roc_auc_score([1] * len(pos) + [0] * len(neg), pos + neg)
    assert auc(pos, neg) == pytest.approx(expected)


def test_bootstrap_interval():
    pos, neg = [0.9, 0.6, 0.55, 0.3, 0.75], [0.6, 0.2, 0.5, 0.55]
    lo, hi = bootstrap_auc(pos, neg)
    assert 0 <= lo <= auc(pos, neg) <= hi <= 1 and lo < hi
    assert bootstrap_auc(pos, neg) == (lo, hi)  # fixed seed
    assert bootstrap_auc(pos, neg, seed=1) != (lo, hi)
    # perfectly separated groups stay separated in every resample: the interval is [1, 1]
    assert bootstrap_auc([0.8, 0.9], [0.1, 0.2]) == (1.0, 1.0)
    assert bootstrap_auc([0.8], []) == (None, None)
    # the percentile interval of an independent resampling loop with the same generator
    import numpy as np
    rng = np.random.default_rng(0)
    stats = [auc(rng.choice(pos, 5), rng.choice(neg, 4)) for _ in range(1000)]
    assert (lo, hi) == tuple(np.percentile(stats, [2.5, 97.5]))


def test_diagnostics_of_an_iteration():
    samples = [{"prompt_id": "p1", "responses": ["a b c", "x\nx\nx", "d e"], "finished": [True, False, True]},
               {"prompt_id": "p2", "responses": ["a b", "f g h"], "finished": [False, False]},
               {"prompt_id": "p3", "responses": ["u v", "w"], "finished": [True, True]}]
    n_tokens = [[4, 7, 3], [3, 4], [3, 2]]
    pairs = [{"prompt_id": "p1", "chosen_index": 1, "rejected_index": 2},
             {"prompt_id": "p2", "chosen_index": 0, "rejected_index": 1},
             {"prompt_id": "p3", "chosen_index": 0, "rejected_index": 1}]
    correct = {"p1": [True, False, True], "p2": [True, False], "p3": [False, False]}  # all three verifiable
    out = diagnostics(samples, n_tokens, pairs, correct, {"p1": 0.2, "p2": 0.8, "p3": None})
    assert set(out) == set(DIAGNOSTICS)
    assert out["truncation_rate"] == pytest.approx(3 / 7)
    assert out["mean_length"] == pytest.approx(26 / 7)
    assert out["repetition_rate"] == pytest.approx(1 / 7)  # "x\nx\nx"
    # bigrams: (a b) (b c) | (x x) (x x) | (d e) | (a b) | (f g) (g h) | (u v) -> 9, distinct 7
    assert out["distinct_2"] == pytest.approx(7 / 9)
    assert out["chosen_length"] == pytest.approx((7 + 3 + 3) / 3)
    assert out["rejected_length"] == pytest.approx((3 + 4 + 2) / 3)
    # p1: chosen wrong, rejected right (bad); p2: good; p3: both wrong (other)
    assert (out["good_pairs"], out["bad_pairs"], out["other_pairs"], out["n_verifiable"]) == (1 / 3, 1 / 3, 1 / 3, 3)
    assert out["auc_c"] == 1.0  # the good pair's C (0.8) above the bad pair's (0.2)
    assert (out["auc_c_lo"], out["auc_c_hi"]) == (1.0, 1.0)


def test_diagnostics_without_labels_or_pairs():
    samples = [{"prompt_id": "p1", "responses": ["a b"], "finished": [True]}]
    out = diagnostics(samples, [[3]], [], {}, {})
    assert out["good_pairs"] is None and out["n_verifiable"] == 0 and out["auc_c"] is None
    assert out["chosen_length"] is None and out["auc_c_lo"] is None


def _fake_run(d, reg: str, seed: int, diag: dict) -> None:
    import json

    import yaml
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"regularizer={reg}", f"seed={seed}"]))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "pipeline": {"iterations": 1}}))
    rows = [{"model": f"M{k}", "consistency": None, "n_pairs": None, "diagnostics": diag if k == 2 else None,
             "eval": {"arc_easy": 0.5}, "eval_avg": 0.5} for k in range(3)]
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_cream_table_shows_diagnostics_by_name(tmp_path, capsys):
    from cream import cli

    for job, (reg, seed, good, auc_c) in enumerate([("none", 1, 0.2, 0.4), ("none", 2, 0.4, 0.6),
                                                     ("cream_avg", 1, 0.5, 0.7), ("cream_avg", 2, 0.7, None)]):
        _fake_run(tmp_path / str(job), reg, seed, {"good_pairs": good, "auc_c": auc_c, "chosen_length": 10.0 * seed})
    assert cli.table([str(tmp_path), "--columns", "good_pairs,auc_c,chosen_length"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head == ["Method", "Model", "good_pairs", "auc_c", "chosen_length", "n"]
    cells, method = {}, None
    for ln in lines[2:]:
        row = [c.strip() for c in ln.strip("|").split("|")]
        method = row[0] or method  # the method is named on its first row only
        cells[(method, row[1])] = row
    srlm, cream = cells[("C = 1", "M2")], cells[("CREAM (avg C)", "M2")]
    # mean ± std (ddof=1) over the 2 seeds; shares with 3 digits, lengths with 1; never bold
    assert srlm[2:5] == ["0.300 ± 0.141", "0.500 ± 0.141", "15.0 ± 7.1"]
    assert cream[2:5] == ["0.600 ± 0.141", "0.700 (n=1)", "15.0 ± 7.1"]
    # the default table keeps its columns
    assert cli.table([str(tmp_path)]) == 0
    assert "good_pairs" not in capsys.readouterr().out
    # the CSV has every diagnostic of every run, M2's filled, M0's and M1's empty
    import csv

    rows = {(r["run_dir"], r["model"]): r for r in csv.DictReader((tmp_path / "runs_gen.csv").open())}
    assert rows[(str(tmp_path / "1"), "M2")]["good_pairs"] == "0.4"
    last = rows[(str(tmp_path / "3"), "M2")]
    assert last["auc_c"] == "" and last["chosen_length"] == "20.0"
    assert rows[(str(tmp_path / "0"), "M0")]["good_pairs"] == ""


def test_diagnostics_of_rows_without_finished_flags_or_lengths():
    """Older run dirs: samples without ``finished`` (counted as finished), rewards without ``n_tokens``."""
    samples = [{"prompt_id": "p1", "responses": ["a b", "c d e"], "finished": None}]
    out = diagnostics(samples, [None], [{"prompt_id": "p1", "chosen_index": 0, "rejected_index": 1}], {}, {})
    assert out["truncation_rate"] == 0.0 and out["mean_length"] is None and out["chosen_length"] is None
    assert out["distinct_2"] == 1.0
