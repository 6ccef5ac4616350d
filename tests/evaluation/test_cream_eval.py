"""``cream-eval``: its own config and --help, one clear message (exit 2, no traceback) for bad input, and a
run on a tiny model whose result.json agrees with its predictions.jsonl."""
from __future__ import annotations

import json
import math

import pytest

from conftest import run_cli
from cream.data import load_benchmark
from cream.data.prompts import format_prompt, render
from cream.evaluation.answers import extract, matches
from cream.models.loading import load_tokenizer


def _eval(args, cwd):
    proc = run_cli(args, cwd=cwd, check=False, script="cream-eval", env={"HF_HUB_OFFLINE": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def test_help_lists_the_keys(tmp_path):
    rc, out = _eval(["--help"], tmp_path)
    assert rc == 0
    for key in ("model.name_or_path=DIR", "out=DIR", "eval.benchmarks=", "eval.modes=", "eval.limit=",
                "eval.extraction=", "data.dir=", "eval.loglik_chat_template"):
        assert key in out, key
    assert "rewarder" not in out and "regularizer" not in out  # its own config, not the training one


def test_cfg_job_is_its_own_config(tmp_path):
    rc, out = _eval(["--cfg", "job", "model.name_or_path=/x"], tmp_path)
    assert rc == 0
    top = {line.split(":")[0] for line in out.splitlines() if line and not line.startswith((" ", "-"))}
    assert {"model", "data", "eval", "trainer", "out", "seed"} <= top
    assert not top & {"pipeline", "rewarder", "regularizer", "consistency", "loss", "logger", "sampler"}


@pytest.mark.parametrize("args,message", [
    ([], "model.name_or_path is required"),
    (["model.path={tmp}"], "model.path: unknown key (did you mean model.name_or_path?)"),
    (["model.name_or_path=/no/such/model"], "model.name_or_path='/no/such/model': no such folder"),
    (["model.name_or_path={tmp}", "eval.extraction=loose"],
     "eval.extraction: Invalid value 'loose', expected one of [lenient, strict, official]"),
    (["model.name_or_path={tmp}", "eval.modes=[generate,mc]"],
     "eval.modes[1]: Invalid value 'mc', expected one of [generate, loglik]"),
    (["model.name_or_path={tmp}", "data.dir=/no/such/data"], "/no/such/data"),
    (["model.name_or_path={tmp}"], "cannot load"),
    (["model.name_or_path={tmp}", "eval.nope=1"], "eval.nope"),
])
def test_bad_input_is_one_message_and_leaves_nothing(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    rc, out = _eval([a.format(tmp=tmp_path / "empty") for a in args], tmp_path)
    assert rc != 0 and message in out
    assert "Traceback" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no run dir (cream-table would list it)


def test_an_earlier_evaluation_is_not_overwritten(tmp_path):
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "result.json").write_text("{}")
    rc, out = _eval(["model.name_or_path=/x", f"out={tmp_path / 'ev'}"], tmp_path)
    assert rc == 2 and "already holds result.json" in out
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["result.json"]


@pytest.mark.slow
def test_cream_eval_on_a_tiny_model(tiny_dir, tmp_path):
    out = tmp_path / "eval"
    rc, text = _eval([f"model.name_or_path={tiny_dir}", "eval.limit=6", "eval.benchmarks=[arc_easy,gsm8k]",
                      "eval.max_new_tokens=8", "eval.extraction=official", f"out={out}"], tmp_path)
    assert rc == 0, text
    assert f"model: {tiny_dir}" in text and "M0" not in text  # names the model it evaluated
    result = json.loads((out / "result.json").read_text())
    preds = [json.loads(x) for name in ("predictions.jsonl", "predictions_loglik.jsonl")
             for x in (out / name).read_text().splitlines()]
    assert result["model"] == str(tiny_dir) and result["extraction"] == "official"
    assert result["n"] == {"arc_easy": 6, "gsm8k": 6}
    gen = [p for p in preds if p["mode"] == "generate"]
    ll = [p for p in preds if p["mode"] == "loglik"]
    assert len(gen) == 12 and len(ll) == 6  # log-likelihood scoring is for multiple choice only
    tok = load_tokenizer(tiny_dir)
    golds = {ex.id: ex for name, split in (("arc_easy", "test"), ("gsm8k", "test"))
             for ex in load_benchmark(name, split)[:6]}
    for p in gen:  # every rule set's answer, re-extracted from the saved raw output
        ex = golds[p["id"]]
        assert p["prompt"] == render(tok, format_prompt(ex))  # the prompt exactly as the model saw it
        for rules in ("lenient", "strict", "official"):
            found = extract(ex, p["output"], rules)
            assert p[rules] == {"answer": found.answer, "rule": found.rule, "correct": matches(ex, found, rules)}
        assert p["correct"] == p["official"]["correct"]
    for name in ("arc_easy", "gsm8k"):
        for rules in ("lenient", "strict", "official"):
            s = [float(p[rules]["correct"]) for p in gen if p["benchmark"] == name]
            acc = sum(s) / 6
            assert result[f"eval_{rules}"][name] == pytest.approx(acc)
            assert result[f"eval_{rules}_stderr"][name] == pytest.approx(math.sqrt(acc * (1 - acc) / 5))
        assert result["eval"][name] == result["eval_official"][name]
    s = [float(p["acc_norm"]["correct"]) for p in ll]
    assert result["eval_acc_norm"] == {"arc_easy": pytest.approx(sum(s) / 6)}
    assert all(len(p["options"]) == len(golds[p["id"]].choices) and p["prompt"].startswith("Question: ") for p in ll)
    assert "eval_official" in text and "±" in text


def test_a_loglik_only_evaluation_writes_no_empty_prediction_file(tiny_dir, tmp_path):
    out = tmp_path / "eval"
    rc, text = _eval([f"model.name_or_path={tiny_dir}", "eval.limit=3", "eval.modes=[loglik]", f"out={out}"], tmp_path)
    assert rc == 0, text
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "cream-eval.log", "predictions_loglik.jsonl", "result.json"]
    assert json.loads((out / "result.json").read_text())["model"] == str(tiny_dir)
