"""The config schema (cream/config.py) and the console scripts (cream/cli.py): unknown keys, wrong types and bad
``_target_`` group keys are refused before the run dir is written, as one line and exit status 2; ``--help`` is
short; ``debug=smoke`` needs no ``+``; conf/ holds each default once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import ROOT, compose
from cream import cli
from cream.config import TrainConfig, check, composition_error, validate_config
from cream.errors import ConfigError, PoolError


def console(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the function a console script of setup.cfg calls (``cream.cli:<name>``), as that script does."""
    code = f"import sys; from cream.cli import {script}; sys.exit({script}())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def in_process(script: str, args: list[str], cwd: Path, monkeypatch, capsys) -> subprocess.CompletedProcess:
    """The same call in this process (no interpreter start, no imports again): its return value or SystemExit
    code as the exit status, what it printed as stdout / stderr."""
    prog = {"train": "cream-train", "evaluate": "cream-eval"}[script]
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [prog, *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # (user_errors sets it; restored after the test)
    capsys.readouterr()
    try:
        code = getattr(cli, script)()
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([prog, *args], code or 0, out, err)


def refused(proc: subprocess.CompletedProcess, prog: str) -> str:
    """The one line a refused command prints; nothing on stdout, no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and not ln.startswith("  ")]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------- the schema
@pytest.mark.parametrize("override, process",
                         [("+dpo.learning_rate=1e-6", "child"), ("dpo.learning_rate=1e-6", "same")])
def test_unknown_key_is_refused_with_the_keys_it_could_be(override, process, tmp_path, monkeypatch, capsys):
    """Once through the console script's process (its exit status 2), once in this process."""
    proc = (console("train", [override], tmp_path) if process == "child"
            else in_process("train", [override], tmp_path, monkeypatch, capsys))
    line = refused(proc, "cream-train")
    assert line == ("cream-train: error: dpo.learning_rate: unknown key (did you mean dpo.lr?); dpo takes: lr, epochs, "
                    "batch_size, warmup_ratio, weight_decay, rpo_alpha, micro_batch_size")
    assert list(tmp_path.iterdir()) == []  # refused before Hydra wrote a run dir


@pytest.mark.parametrize("override, message", [
    ("pipeline.on_config_change=maybe",
     "pipeline.on_config_change: Invalid value 'maybe', expected one of [error, redo]"),
    ("eval.modes=[generate,mc]", "eval.modes[1]: Invalid value 'mc', expected one of [generate, loglik]"),
    ("eval.extraction=loose", "eval.extraction: Invalid value 'loose', expected one of [lenient, strict, official]"),
    ("data.source=web", "data.source: Invalid value 'web', expected one of [files, hub]"),
    ("data.seed.source=web", "data.seed.source: Invalid value 'web', expected one of [benchmarks, oasst, file]"),
    ("data.pool=all", "data.pool: Invalid value 'all', expected one of [per_benchmark, paper, file]"),
    ("sampling.instruction=think", "sampling.instruction: Invalid value 'think', expected one of [cot, none]"),
])
def test_a_choice_outside_its_enum_is_refused_naming_the_key_and_the_choices(override, message):
    with pytest.raises(Exception) as e:
        compose([override])
    assert str(composition_error(e.value)) == message


def test_choices_compare_equal_to_their_names_and_reach_the_manifests_as_text():
    import json

    cfg = compose(["eval.modes=[loglik]", "eval.extraction=strict", "data.pool=paper"])
    assert cfg.eval.extraction == "strict" and list(cfg.eval.modes) == ["loglik"] and cfg.data.pool == "paper"
    modes = OmegaConf.to_container(cfg.eval.modes)
    assert json.dumps({"e": cfg.eval.extraction, "m": modes}) == '{"e": "strict", "m": ["loglik"]}'


def test_wrong_type_is_refused(tmp_path, monkeypatch, capsys):
    line = refused(in_process("train", ["sampling.n=four"], tmp_path, monkeypatch, capsys), "cream-train")
    assert line.startswith("cream-train: error: sampling.n: ") and "'four'" in line and "Integer" in line
    assert list(tmp_path.iterdir()) == []


def test_target_group_keys_are_checked_against_the_constructor(tmp_path, monkeypatch, capsys):
    line = refused(in_process("train", ["rewarder=judge", "+rewarder.temprature=0.3"], tmp_path, monkeypatch, capsys),
                   "cream-train")
    assert line == ("cream-train: error: rewarder.temprature: unknown key for rewarder "
                    "(cream.rewarders.judge.JudgeRewarder) (did you mean rewarder.temperature?); it accepts: k, "
                    "temperature, top_p, max_new_tokens, batch_size, template, forced_score")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("overrides, message", [
    (["+model.foo=1"], "model.foo: unknown key; model takes: name_or_path, gguf_file, dtype"),
    (["+data.seed.foo=1"], "data.seed.foo: unknown key; data.seed takes: source, path, lang, max_turns, limit"),
    (["+trainer.cream.ckpt=1"], "trainer.cream.ckpt: unknown key; trainer.cream takes: checkpoint_every_n_steps"),
    (["+loss.eps=0.1"],
     "loss.eps: unknown key for loss (cream.method.losses.SigmoidLoss); it accepts: beta, average_logps"),
    (["regularizer=fixed", "+regularizer.C=0.3"],
     "regularizer.C: unknown key for regularizer (cream.method.regularizers.FixedConsistency); it accepts: c"),
    (["logger=wandb", "+logger.wandb.entity=me"], "logger.wandb.entity: Key 'entity' not in 'WandbConfig'"),
    (["model.tiny.num_layers=two"],
     "model.tiny.num_layers: Value 'two' of type 'str' could not be converted to Integer"),
    (["model=local"], "model.name_or_path is required: set model.name_or_path=VALUE"),
])
def test_check_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        check(compose(overrides))
    assert str(e.value).startswith(message), str(e.value)


def test_every_shipped_choice_passes_the_check():
    for group in ("rewarder", "loss", "regularizer", "consistency", "sampler", "trainer", "logger", "data"):
        for path in sorted((ROOT / "conf" / group).glob("*.yaml")):
            check(compose([f"{group}={path.stem}"]))
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        check(compose([f"experiment={path.stem}"]))
    validate_config(compose([]))


def test_defaults_live_in_the_schema_and_presets_only_change_them():
    """conf/config.yaml is the defaults list (and Hydra's settings); the values come from the dataclasses."""
    top = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())
    assert set(top) == {"defaults", "hydra"} and top["defaults"][0] == "cream_schema"
    cfg, schema = compose([]), OmegaConf.structured(TrainConfig)
    for key in ("sft.warmup_ratio", "dpo.weight_decay", "pipeline.iterations", "sampling.n",
                "trainer.gradient_clip_val",
                "trainer.cream.checkpoint_every_n_steps", "eval.limit", "data.seed.source"):
        assert OmegaConf.select(cfg, key) == OmegaConf.select(schema, key), key
    assert cfg.sampling.n == 4 and cfg.eval.limit == 200 and list(cfg.eval.benchmarks) == ["arc_easy"]
    for preset in (ROOT / "conf" / "data").glob("*.yaml"):  # data.dir and data.source are the schema's, once
        assert not {"dir", "source"} & set(yaml.safe_load(preset.read_text())), preset.name


PAPER_RUNS = ("cream_llama2_7b", "cream_llama3_8b", "srlm_llama2_7b", "srlm_llama3_8b", "srlm_judge_llama2_7b",
              "srlm_judge_llama3_8b")


def test_paper_files_extend_the_shared_base():
    for name in PAPER_RUNS:
        body = yaml.safe_load((ROOT / "conf" / "experiment" / f"{name}.yaml").read_text())
        assert set(body) == {"defaults"}, name  # no values of its own
        assert body["defaults"][0] == "/experiment/paper_base"
        assert {next(iter(d)) for d in body["defaults"][1:]} <= {"override /model", "override /regularizer",
                                                                 "override /rewarder"}
    a = compose(["experiment=cream_llama3_8b"])
    assert a.trainer.cream.activation_checkpointing is True and a.sampling.n == 5
    assert a.regularizer._target_ == "cream.method.regularizers.DatasetConsistency"


@pytest.mark.parametrize("model", ["llama2_7b", "llama3_8b"])
def test_srlm_is_cream_with_plain_dpo_and_the_judge_variant_keeps_its_prompt(model):
    cream, srlm = compose([f"experiment=cream_{model}"]), compose([f"experiment=srlm_{model}"])
    judge = compose([f"experiment=srlm_judge_{model}"])
    assert srlm.rewarder == cream.rewarder == compose(["rewarder=implicit"]).rewarder
    assert srlm.regularizer == compose(["regularizer=none"]).regularizer
    assert srlm.regularizer._target_ != cream.regularizer._target_
    # everything else is the CREAM run's
    differ = {k for k in cream if k not in ("regularizer",) and cream[k] != srlm[k]}
    assert not differ, differ
    assert judge.rewarder._target_ == "cream.rewarders.judge.JudgeRewarder" and judge.rewarder.forced_score is False
    assert judge.regularizer == srlm.regularizer and judge.model == srlm.model


def test_debug_is_in_the_defaults_list():
    cfg = compose(["debug=smoke"])  # no `+`
    assert (cfg.pipeline.iterations, cfg.data.n_seed, cfg.eval.limit, cfg.sampling.max_new_tokens) == (1, 32, 32, 24)
    assert compose([]).pipeline.iterations == 2


def test_values_are_typed_where_they_are_read():
    cfg = compose(["sft.lr=1e-3", "sampling.n=6", "trainer.cream.gpu_memory_gb=40"])
    assert cfg.sft.lr == 1e-3 and isinstance(cfg.sft.lr, float) and cfg.sampling.n == 6
    assert cfg.trainer.cream.gpu_memory_gb == 40.0 and isinstance(cfg.trainer.cream.gpu_memory_gb, float)


# --------------------------------------------------------------------------------------------- the CLIs
def test_help_is_short_and_names_the_groups(tmp_path, monkeypatch, capsys):
    proc = in_process("train", ["--help"], tmp_path, monkeypatch, capsys)
    assert proc.returncode == 0
    text = proc.stdout
    assert len(text.splitlines()) < 45 and "warmup_ratio" not in text  # a usage text, not the whole config
    for group in ("rewarder:", "regularizer:", "consistency:", "loss:", "sampler:", "trainer:", "model:", "data:",
                  "debug: smoke"):
        assert group in text, group
    assert "cream/config.py" in text and "README.md" in text


def test_cream_eval_without_a_model_path(tmp_path, monkeypatch, capsys):
    line = refused(in_process("evaluate", [], tmp_path, monkeypatch, capsys), "cream-eval")
    assert "model.name_or_path is required" in line
    assert list(tmp_path.iterdir()) == []
    line = refused(console("evaluate", ["model.path=/x"], tmp_path), "cream-eval")  # the key cream-train takes
    assert line.startswith("cream-eval: error: model.path: unknown key (did you mean model.name_or_path?)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("override,hint", [
    ("learning_rate=1e-6", "sft.lr or dpo.lr"),                 # TRL / transformers names
    ("dpo.num_train_epochs=2", "dpo.epochs"),
    ("dpo.beta=0.1", "loss.beta"),
    ("lora_alpha=16", "model.lora={alpha: ...}"),                # PEFT names
    ("+model.lora.lora_alpha=16", "alpha: model.lora={alpha: ...}"),
    ("sampling.temprature=1.0", "sampling.temperature"),        # a typo: the closest key of the same node
    ("+rewarder.batchsize=3", "rewarder.batch_size"),            # a target's arguments
    ("eval.benchmark=[arc_easy]", "eval.benchmarks"),
])
def test_unknown_key_suggests_the_nearest(override, hint, tmp_path):
    line = refused(console("train", ["debug=smoke", override], tmp_path), "cream-train")
    assert f"(did you mean {hint}?)" in line, line
    assert list(tmp_path.iterdir()) == []  # before the run dir


def test_cream_train_error_inside_the_run_is_one_line(tmp_path):
    """A CreamError raised while the pipeline runs (not by the schema): one line on stderr, kept in the log file."""
    nowhere = tmp_path / "no_model"
    proc = console("train", ["model=local", f"model.name_or_path={nowhere}", "data.allow_sample=true",
                             f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)  # the base stage cannot load it
    proc.stdout = ""  # the run's progress log (Hydra's console handler writes to stdout)
    line = refused(proc, "cream-train")
    assert line.startswith(f"cream-train: error: model.name_or_path='{nowhere}' is neither a local folder")
    assert "is neither a local folder" in (tmp_path / "run" / "cream-train.log").read_text()  # job name cream-train
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


@pytest.mark.parametrize("name, argv", [("table", ["DIR"]), ("plot", ["DIR"]),
                                        ("train_rm", ["--pairs", "DIR/p.jsonl", "--model", "m", "--out", "o"])])
def test_argparse_scripts_turn_a_cream_error_into_one_line(name, argv, monkeypatch, tmp_path, capsys):
    def boom(*a, **k):
        raise PoolError("no pairs at all")

    monkeypatch.setattr(cli, "runs_or_error", boom)
    monkeypatch.setattr(cli.artifacts, "read_jsonl", boom)
    rc = getattr(cli, name)([a.replace("DIR", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    prog = {"table": "cream-table", "plot": "cream-plot", "train_rm": "cream-train-rm"}[name]
    assert rc == 2 and err == f"{prog}: error: no pairs at all\n"


def test_console_scripts_all_live_in_cli():
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in setup["options.entry_points"]["console_scripts"].strip().splitlines())
    assert scripts == {"cream-train": "cream.cli:train", "cream-eval": "cream.cli:evaluate",
                       "cream-train-rm": "cream.cli:train_rm", "cream-table": "cream.cli:table",
                       "cream-plot": "cream.cli:plot"}


@pytest.mark.slow
def test_a_wheel_ships_the_configs(tmp_path):
    """A non-editable install (the wheel, unpacked elsewhere) finds conf/ inside the package and composes."""
    import shutil
    import zipfile

    # built from a copy of the files git sees: setuptools writes build/ and *.egg-info next to the sources,
    # which must not appear in (or vanish from) the checkout while other tests run
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("cream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"cream/conf/config.yaml", "cream/conf/model/smollm2_135m.yaml",
            "cream/conf/experiment/smollm2_cream.yaml"} <= set(names)
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import sys; sys.argv = ['cream-train', '--help']; import cream.paths as p; print(p.conf_dir()); "
            "from cream.cli import train; train()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == str(tmp_path / "site" / "cream" / "conf")
    assert "Usage: cream-train" in proc.stdout
