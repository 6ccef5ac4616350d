"""Every console script (setup.cfg): ``cream-train`` and ``cream-eval`` (Hydra apps, conf/), and
``cream-train-rm``, ``cream-table``, ``cream-plot`` (argparse).  The work is done elsewhere; here each
script parses its arguments and turns a user error (a :class:`~cream.errors.CreamError`, or a command
line or config Hydra cannot compose) into one message on stderr and exit status 2.  Anything else is a
bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cream import artifacts
from cream.config import composition_error
from cream.errors import CreamError
from cream.paths import conf_dir
from cream.report import table as table_mod
from cream.report.runs import METRICS, default_metric, runs_or_error

# torch, transformers, lightning and matplotlib are imported by the scripts that use them, not here: cream-table
# and every --help start in a fraction of the time

CONF_DIR = str(conf_dir())  # conf/ of the checkout, or the copy inside an installed wheel
log = logging.getLogger("cream")


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def user_errors(prog: str) -> Callable:
    """Decorator of a console script: a CreamError (or Hydra's composition error) becomes one line on stderr
    (``PROG: error: MESSAGE``) and exit status 2.  Hydra prints its own errors (with a hint that suggests
    ``+key=``, which the schema refuses too) unless HYDRA_FULL_ERROR=1, which hands them to us instead."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def main(*args, **kwargs):
            os.environ.setdefault("HYDRA_FULL_ERROR", "1")
            try:
                return fn(*args, **kwargs)
            except CreamError as e:
                return _fail(prog, str(e))
            except Exception as e:
                error = composition_error(e)
                if error is None:
                    raise
                return _fail(prog, str(error))

        return main

    return wrap


def _in_run(fn: Callable) -> Callable:
    """For a Hydra task function: a CreamError raised while the run goes is one line on stderr
    (``PROG: error: MESSAGE``), also written to the run dir's log file, and exit status 2 (raised on,
    Hydra would add lines of its own)."""

    @functools.wraps(fn)
    def task(cfg: DictConfig):
        try:
            return fn(cfg)
        except CreamError as e:
            record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (e,), None)
            for handler in logging.getLogger().handlers:  # Hydra's console handler writes to stdout: the file only
                if isinstance(handler, logging.FileHandler):
                    handler.handle(record)
            raise SystemExit(_fail(HydraConfig.get().job.name, str(e))) from None

    return task


def _hub_reachable(timeout: float = 2.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def prepare_environment(cfg: DictConfig) -> None:
    """Offline unless the hub is reachable (no long retries); quiet tokenizers; CPU threads."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    from cream.models.loading import is_local

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    needs_hub = ((cfg.model.name_or_path is not None and not is_local(cfg.model.name_or_path))
                 or cfg.data.source == "hub")
    if "HF_HUB_OFFLINE" not in os.environ and (not needs_hub or not _hub_reachable()):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"


# ------------------------------------------------------------------------------------------- cream-train
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
@_in_run
def _train(cfg: DictConfig) -> float | None:
    from cream.pipeline import run  # the pipeline imports every stage; cream-eval and --help do without

    prepare_environment(cfg)
    if cfg.plan:
        from cream.training.plan import make_plan, render

        print(render(make_plan(cfg)))
        return None
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    log.info("run dir: %s", run_dir)
    rows = run(cfg, run_dir)
    return rows[-1]["eval_avg"] if rows else None


@user_errors("cream-train")
def train() -> None:
    """``cream-train [group=option ...] [key=value ...]``: run (or resume) the CREAM pipeline in the Hydra run
    dir (``cream-train --help``).  ``plan=true``: print the plan of the composed config (cream/training/plan.py:
    sizes, memory per GPU, steps) and exit.  The config is checked before the run dir is written."""
    _train()


# -------------------------------------------------------------------------------------------- cream-eval
def _clean_on_failure(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def task(cfg: DictConfig):
        try:
            return fn(cfg)
        except BaseException:
            _remove_failed_start(Path(HydraConfig.get().runtime.output_dir))
            raise

    return task


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
@_clean_on_failure
@_in_run
def _evaluate(cfg: DictConfig) -> None:
    _evaluate_into(cfg, Path(HydraConfig.get().runtime.output_dir))


def _load_for_eval(cfg: DictConfig):
    """(model, tokenizer) of ``model.name_or_path``: a saved folder, a hub id, or a GGUF file inside the folder
    (``model.gguf_file``, which a GGUF preset sets: a saved M_k folder without that file is loaded as it is)."""
    from cream.models.loading import gguf_source, load_gguf, load_model, load_tokenizer

    m = cfg.model
    if m.gguf_file:
        try:
            gguf_source(m.name_or_path, m.gguf_file)
        except CreamError:
            if not (Path(str(m.name_or_path)) / "config.json").is_file():
                raise
            log.info("model.gguf_file=%s is not in %s, a saved model folder: loading the folder", m.gguf_file,
                     m.name_or_path)
        else:
            return load_gguf(m.name_or_path, m.gguf_file, m.dtype)
    return load_model(m.name_or_path, m.dtype, m.trust_remote_code), load_tokenizer(m.name_or_path, m.trust_remote_code)


def _evaluate_into(cfg: DictConfig, run_dir: Path) -> None:
    from cream.data.pool import eval_sets
    from cream.models.loading import on_device
    from cream.report.results import FAMILIES, pct
    from cream.stages import evaluate as ev

    prepare_environment(cfg)
    name = str(cfg.model.name_or_path)
    sets = eval_sets(cfg)
    print(f"cream-eval: evaluating {name} on {', '.join(sets)} into {run_dir}")
    model, tok = _load_for_eval(cfg)
    loaded = [model]

    def load():  # the model loaded above; again from disk only to undo a cast (inference.*_dtype)
        return on_device(loaded.pop() if loaded else _load_for_eval(cfg)[0], cfg)

    label = "/".join(Path(name).parts[-3:]) or name  # in progress lines: iter_1/dpo/model
    result, predictions, loglik_predictions = ev.evaluate_model(load, tok, sets, cfg, label)
    written = []
    for file, rows in (("predictions.jsonl", predictions), ("predictions_loglik.jsonl", loglik_predictions)):
        if rows:  # a loglik-only run has no generative predictions: no empty file
            artifacts.write_jsonl(run_dir / file, rows)
            written.append(file)
    artifacts.write_json(run_dir / "result.json", {"model": name, **result})
    print(f"model: {name}")
    for key in FAMILIES:
        for bench, acc in (result[key] or {}).items():
            print(f"{key:<14} {bench:<14} {pct(acc, result[f'{key}_stderr'][bench])}")
        if result[f"{key}_avg"] is not None and len(result[key]) > 1:
            print(f"{key:<14} {'avg':<14} {pct(result[f'{key}_avg'], result[f'{key}_avg_stderr'])}")
    print(f"wrote {', '.join(['result.json', *written])} to {run_dir}")


def _remove_failed_start(run_dir: Path) -> None:
    """A cream-eval that failed before writing result.json leaves no run dir behind (cream-table would list it):
    Hydra's own files go, then the folder if nothing else is in it (a folder the user named keeps its files)."""
    import shutil

    if (run_dir / "result.json").exists():
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir.resolve():
            handler.close()
            Path(handler.baseFilename).unlink(missing_ok=True)
    for file in ("predictions.jsonl", "predictions_loglik.jsonl"):
        (run_dir / file).unlink(missing_ok=True)
    cwd = Path.cwd().resolve()
    for folder in [run_dir.resolve(), *run_dir.resolve().parents]:  # and the dated folders above, when empty
        if folder == cwd or cwd not in folder.parents and folder != run_dir.resolve():
            break
        if not folder.is_dir() or any(folder.iterdir()):
            break
        folder.rmdir()


@user_errors("cream-eval")
def evaluate() -> None:
    """``cream-eval model.name_or_path=DIR [out=DIR]``: evaluate one model (no training) into ``out``.  Its own
    config (``conf/evaluate.yaml``; ``cream-eval --help`` lists the keys, ``--cfg job`` prints them)."""
    _evaluate()


# ---------------------------------------------------------------------------------------- cream-train-rm
def train_rm_parser() -> argparse.ArgumentParser:
    """The options of ``cream-train-rm``; the training defaults are ``rewarder.train`` of
    conf/rewarder/reward_model.yaml (``RMTraining.defaults``), the others those of
    :func:`cream.training.train_rm.train_reward_model`."""
    from cream.training import train_rm as train_rm_mod

    d = {k: p.default for k, p in inspect.signature(train_rm_mod.train_reward_model).parameters.items()}
    d |= vars(train_rm_mod.RMTraining.defaults())
    ap = argparse.ArgumentParser(prog="cream-train-rm", description="Train a Bradley-Terry reward model on preference "
                                 "pairs; `rewarder=reward_model rewarder.path=OUT` uses it.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  cream-train-rm --pairs pairs.jsonl --model outputs/2026-01-01/12-00-00/sft/model --out rm/ --epochs 1
See README.md, section "Config groups" (rewarder).""")
    ap.add_argument("--pairs", required=True, help="JSONL file, one {prompt, chosen, rejected} per line")
    ap.add_argument("--model", required=True, help="the backbone: a causal LM folder or hub id")
    ap.add_argument("--out", required=True, help="folder to write the reward model to")
    ap.add_argument("--epochs", type=int, default=d["epochs"])
    ap.add_argument("--lr", type=float, default=d["lr"])
    ap.add_argument("--batch-size", type=int, default=d["batch_size"])
    ap.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    ap.add_argument("--warmup-ratio", type=float, default=d["warmup_ratio"])
    ap.add_argument("--max-length", type=int, default=d["max_length"])
    ap.add_argument("--max-prompt-length", type=int, default=d["max_prompt_length"])
    ap.add_argument("--seed", type=int, default=d["seed"])
    ap.add_argument("--accelerator", default="auto", help="cpu | gpu | auto")
    ap.add_argument("--precision", default=d["precision"])
    ap.add_argument("--dtype", default=d["dtype"])
    ap.add_argument("--trust-remote-code", action="store_true")
    ap.add_argument("--render", action="store_true", help="apply the model's chat template to the raw prompts")
    return ap


@user_errors("cream-train-rm")
def train_rm(argv: Sequence[str] | None = None) -> int:
    from cream.training import train_rm as train_rm_mod

    a = train_rm_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    pairs = artifacts.read_jsonl(Path(a.pairs))
    summary = train_rm_mod.train_reward_model(
        a.model, pairs, a.out, epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, weight_decay=a.weight_decay,
        warmup_ratio=a.warmup_ratio, max_length=a.max_length, max_prompt_length=a.max_prompt_length, seed=a.seed,
        accelerator=a.accelerator, precision=a.precision, dtype=a.dtype, trust_remote_code=a.trust_remote_code,
        render_prompts=a.render)
    artifacts.write_json(Path(a.out) / "train_summary.json", summary)
    print(f"reward model saved to {a.out}: {summary}")
    return 0


# ------------------------------------------------------------------------------------ cream-table, -plot
METRIC_HELP = ("which accuracy: auto (default: acc_norm when the runs have log-likelihood accuracies, else gen), "
               "gen (generative, eval.extraction rules), lenient, strict, official, acc, acc_norm "
               "(lm-eval; loglik = acc_norm)")
TABLE_EXAMPLES = """examples:
  cream-table multirun/demo                          acc_norm when loglik ran, else generative accuracy
  cream-table multirun/demo --metric lenient --columns arc_easy avg C
  cream-table multirun/demo --filter rewarder=implicit --format latex > table.tex
See README.md, section "From a sweep to a table"."""
PLOT_EXAMPLES = """examples:
  cream-plot multirun/demo                           accuracy_<metric>.png, consistency.png, tau.png
  cream-plot multirun/demo --metric lenient --out figures/
See README.md, section "From a sweep to a table"."""


def _runs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run dirs or sweep dirs, searched recursively")
    p.add_argument("--metric", choices=["auto", *sorted(METRICS)], default="auto", help=METRIC_HELP)
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="keep runs whose resolved config has KEY=VALUE (repeatable)")


def _parser(prog: str, doc: str, epilog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0], epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def table_parser() -> argparse.ArgumentParser:
    p = _parser("cream-table", table_mod.__doc__, TABLE_EXAMPLES)
    _runs_arguments(p)
    p.add_argument("--columns", nargs="+",
                   help="columns to show: benchmark names, avg, C, pairs (comma or space separated)")
    p.add_argument("--format", choices=["md", "latex", "csv"], default="md", help="what goes to stdout")
    p.add_argument("--out", type=Path, help="where table_<metric>.md, table_<metric>.tex and runs_<metric>.csv go "
                                            "(default: the first DIR)")
    return p


@user_errors("cream-table")
def table(argv: Sequence[str] | None = None) -> int:
    args = table_parser().parse_args(argv)
    runs = runs_or_error("cream-table", args.dirs, args.filter)
    if runs is None:
        return 2
    metric = default_metric(runs) if args.metric == "auto" else args.metric
    columns = None
    if args.columns:
        columns = [c.strip() for arg in args.columns for c in arg.split(",") if c.strip()]
        known = table_mod.available_columns(runs, metric)
        unknown = [c for c in columns if c not in known]
        if unknown:
            return _fail("cream-table", f"unknown column(s) {', '.join(unknown)}; available: {', '.join(known)}")
    built = table_mod.build_table(runs, columns, metric)
    texts = {"md": table_mod.to_markdown(built), "latex": table_mod.to_latex(built),
             "csv": table_mod.to_csv(runs, metric)}
    out = Path(args.out or args.dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    names = {"md": f"table_{metric}.md", "latex": f"table_{metric}.tex", "csv": f"runs_{metric}.csv"}
    for fmt, name in names.items():
        with artifacts.atomic_write(out / name) as f:
            f.write(texts[fmt])
    sys.stdout.write(texts[args.format])
    print(f"wrote {', '.join(str(out / n) for n in names.values())}", file=sys.stderr)
    return 0


def plot_parser() -> argparse.ArgumentParser:
    from cream.report import plots as plots_mod

    p = _parser("cream-plot", plots_mod.__doc__, PLOT_EXAMPLES)
    _runs_arguments(p)
    p.add_argument("--out", type=Path, help="where the PNGs go (default: the first DIR)")
    return p


@user_errors("cream-plot")
def plot(argv: Sequence[str] | None = None) -> int:
    from cream.report import plots as plots_mod

    args = plot_parser().parse_args(argv)
    runs = runs_or_error("cream-plot", args.dirs, args.filter)
    if runs is None:
        return 2
    for r in runs:
        if not r.complete:
            print(f"incomplete (left out): {r.path}: {r.problem}", file=sys.stderr)
    metric = default_metric(runs) if args.metric == "auto" else args.metric
    for path in plots_mod.write_plots(runs, args.out or args.dirs[0], metric):
        print(path)
    return 0
