"""The pipeline's metrics: ``metrics.csv`` in the run dir always, and one wandb run per pipeline (``logger=wandb``).

Every metric has exactly one name, the same in wandb and in the CSV logs:

    per optimizer step, axis ``sft/step`` / ``dpo/step`` (DPO steps counted on across iterations; each row
    also carries ``iteration``):
        sft/train/loss ...            the SFT module's metrics (``sft/logs/metrics.csv`` has them as train/*)
        dpo/train/loss, dpo/train/rewards/{chosen,rejected,margins,accuracies}, dpo/train/logps/{chosen,rejected},
        dpo/train/lr, dpo/train/grad_norm, dpo/train/consistency_weight
                                      (``iter_t/dpo/logs/metrics.csv`` has them as train/*: TRL's names)
    per iteration t, axis ``iteration``:
        iter/consistency/{mean,std,min,max,n,n_undefined}, iter/consistency/c_hist (histogram of the C_j)
        iter/sample/{n_prompts,n_responses,...}, iter/pairs/{n_pairs,n_dropped,chosen_chars,...},
        iter/dpo/{mean_weight,steps}, iter/sample_pairs (a table of 50 pairs)
        iter/reward_quality/{pairwise_accuracy,exact_match,spearman,kendall,response_accuracy,...},
        iter/reward_quality/{tau_hist,correctness_tau_hist} (histograms)
        iter/diagnostics/{truncation_rate,mean_length,repetition_rate,distinct_2,chosen_length,rejected_length,
        good_pairs,bad_pairs,other_pairs,n_verifiable,auc_c,auc_c_lo,auc_c_hi} (cream.report.diagnostics)
        (a count several stages repeat is logged once: prompts under iter/sample, pairs under iter/pairs)
    per model M_k, axis ``model`` (= k; M_{t+1} is the model trained in iteration t): a curve over iterations
        eval/{lenient,strict,official}/<benchmark> (generative, per extraction rule set),
        eval/{acc,acc_norm}/<benchmark> (lm-evaluation-harness log-likelihood), each with /avg and /avg_stderr

``metrics.csv`` (run dir) holds the per-iteration and per-model rows: ``axis,step,key,value`` (histograms as
JSON); the per-step rows are in each training stage's ``logs/metrics.csv``.  wandb also gets the resolved
config and ``results.jsonl`` as artifacts (and the results as a table), and a table of sample pairs per
iteration.  Offline unless ``WANDB_API_KEY`` is set; the key is read by wandb from the environment and never
written to logs or configs.  A resumed pipeline appends to the same wandb run (its id comes from the run dir).
The run dir stays the source of truth: nothing reads wandb back.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from lightning.pytorch.loggers.logger import Logger
from omegaconf import DictConfig, OmegaConf

from cream.evaluation.families import RESULT_KEYS
from cream.paths import RunPaths, iteration_stage, parse_stage

_run = None
# a stage summary's keys that are not logged per iteration: lists, names, and the DPO stage's final
# train/* values (logged per step under dpo/train/*: one name per metric)
_SKIP = ("dropped", "rewarder", "measure", "undefined", "reward_quality", "diagnostics", *RESULT_KEYS)
# evaluation families (cream.report.results.FAMILIES) -> their wandb names; `eval` (the headline under eval.extraction)
# equals one of lenient / strict / official, so it is not logged again under a second name
_EVAL_NAMES = {"eval_lenient": "lenient", "eval_strict": "strict", "eval_official": "official", "eval_acc": "acc",
               "eval_acc_norm": "acc_norm"}
# counts that several stages repeat: logged once (prompts under iter/sample, pairs under iter/pairs)
_DUPLICATES = {"reward": ("n_prompts",), "pairs": ("n_prompts",), "dpo": ("n_pairs",)}


def _secret_free(cfg: DictConfig) -> dict:
    conf = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in conf.items() if "key" not in k.lower() and "token" not in k.lower()}


def enabled(cfg: DictConfig) -> bool:
    return cfg.logger.wandb is not None


def run_id(run_dir: Path) -> str:
    """The wandb run id of a run dir: the same on every resume of it."""
    return "cream-" + hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]


def start(cfg: DictConfig, run_dir: Path):
    """Start (or return) the wandb run of this pipeline run, with its step axes."""
    global _run
    if _run is not None:
        return _run
    import wandb

    w = cfg.logger.wandb
    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    sweep = run_dir.parent.name if run_dir.name.isdigit() else None  # multirun/<date>/<time>/<job>
    _run = wandb.init(project=w.project, group=w.group or sweep, name=str(run_dir.name), tags=list(w.tags),
                      dir=str(run_dir), config=_secret_free(cfg), mode=mode, id=run_id(run_dir), resume="allow",
                      reinit="finish_previous")
    for axis, globs in (("sft/step", ["sft/*"]), ("dpo/step", ["dpo/*"]), ("iteration", ["iter/*"]),
                        ("model", ["eval/*"])):
        _run.define_metric(axis)
        for g in globs:
            _run.define_metric(g, step_metric=axis)
    return _run


class StageLogger(Logger):
    """A training stage's per-step metrics into the pipeline's wandb run, as ``<kind>/<name>`` (kind: sft or
    dpo) with the step axis ``<kind>/step`` = ``offset`` + the stage's optimizer step + 1."""

    def __init__(self, run, kind: str, offset: int = 0, iteration: int = 0):
        super().__init__()
        self._exp, self.kind, self.offset, self.iteration = run, kind, int(offset), int(iteration)

    @property
    def name(self) -> str:
        return "cream-wandb"

    @property
    def version(self) -> str:
        return self.kind

    @property
    def experiment(self):
        return self._exp

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # the whole config is the run's config

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        row = {f"{self.kind}/{k}": float(v) for k, v in metrics.items() if k != "epoch"}
        if not row:
            return
        row[f"{self.kind}/step"] = self.offset + int(step or 0) + 1
        row["iteration"] = self.iteration
        self._exp.log(row)


def _stage_kind(stage: str) -> tuple[str, int]:
    """("sft", 0) or ("dpo", t) from a stage name (``sft``, ``iter_t/dpo``); other names: (name, 0)."""
    step, t = parse_stage(stage)
    return (step, t) if step == "dpo" and t is not None else (stage.split("/")[-1], 0)


def dpo_offset(run_dir: Path, t: int) -> int:
    """DPO optimizer steps taken in iterations 1..t-1 (from their manifests): where iteration t's steps start."""
    total = 0
    for k in range(1, t):
        path = RunPaths(run_dir).manifest(iteration_stage("dpo", k))
        if path.exists():
            total += int((json.loads(path.read_text()).get("summary") or {}).get("steps", 0))
    return total


def make_wandb_logger(cfg: DictConfig, stage: str, run_dir: Path) -> StageLogger:
    kind, t = _stage_kind(stage)
    return StageLogger(start(cfg, Path(run_dir)), kind, dpo_offset(run_dir, t) if kind == "dpo" else 0, t)


def stage_loggers(cfg: DictConfig, stage: str, run_dir: Path) -> list[Logger]:
    """What a training stage logs to besides its CSV log: wandb with ``logger=wandb``, else nothing."""
    return [make_wandb_logger(cfg, stage, run_dir)] if cfg.logger.wandb else []


def _scalars(prefix: str, d: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in d.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not str(k).startswith("train/")
            and k not in _SKIP}


def stage_metrics(run_dir: Path, name: str, summary: dict) -> list[tuple[str, int, dict, dict]]:
    """The per-iteration / per-model rows of a finished stage: (axis, step, scalars, histograms as (counts, bins))."""
    parts = name.split("/")
    if parts[0] == "eval":
        k = int(parts[1][1:])
        row = {}
        for key, mode in _EVAL_NAMES.items():
            for bench, acc in (summary.get(key) or {}).items():
                row[f"eval/{mode}/{bench}"] = acc
            if summary.get(f"{key}_avg") is not None:
                row[f"eval/{mode}/avg"] = summary[f"{key}_avg"]
                row[f"eval/{mode}/avg_stderr"] = summary.get(f"{key}_avg_stderr")
        return [("model", k, row, {})] if row else []
    kind, t = parse_stage(name)
    if t is None:
        return []
    row = {k: v for k, v in _scalars(f"iter/{kind}", summary).items()
           if k.rsplit("/", 1)[1] not in _DUPLICATES.get(kind, ())}
    hists = {}
    if kind == "consistency":
        path = RunPaths(run_dir).stage(name) / "consistency.jsonl"
        cs = [json.loads(line)["c"] for line in path.read_text().splitlines()] if path.exists() else []
        cs = [c for c in cs if c is not None]
        if cs:
            import numpy as np

            counts, bins = np.histogram(cs, bins=10, range=(0.0, 1.0))
            hists["iter/consistency/c_hist"] = ([int(c) for c in counts], [float(b) for b in bins])
    quality = summary.get("reward_quality") or {}
    row |= {k: v for k, v in _scalars("iter/reward_quality", quality).items()
            if k.rsplit("/", 1)[1] not in set(summary) | {"n_prompts"}}  # those already under iter/pairs/
    row |= _scalars("iter/diagnostics", summary.get("diagnostics") or {})
    for key in ("tau_hist", "correctness_tau_hist"):
        h = quality.get(key)
        if isinstance(h, dict) and h.get("counts"):
            hists[f"iter/reward_quality/{key}"] = (list(h["counts"]), list(h["bins"]))
    return [("iteration", t, row, hists)] if row or hists else []


def _append_csv(path: Path, axis: str, step: int, row: dict, hists: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["axis", "step", "key", "value"])
        for k, v in row.items():
            w.writerow([axis, step, k, v])
        for k, (counts, bins) in hists.items():
            w.writerow([axis, step, k, json.dumps({"counts": counts, "bins": bins})])


def log_stage(cfg: DictConfig, run_dir: Path, name: str, manifest: dict) -> None:
    """After a stage ran: its per-iteration / per-model metrics into ``metrics.csv`` and, with
    ``logger=wandb``, the wandb run (plus a table of sample pairs after the pairs stage)."""
    summary = manifest.get("summary") or {}
    rows = stage_metrics(run_dir, name, summary)
    for axis, step, row, hists in rows:
        _append_csv(RunPaths(run_dir).metrics, axis, step, row, hists)
    if not enabled(cfg):
        return
    import wandb

    run = start(cfg, run_dir)
    for axis, step, row, hists in rows:
        run.log({axis: step, **row, **{k: wandb.Histogram(np_histogram=(c, b)) for k, (c, b) in hists.items()}})
    pairs_file = RunPaths(run_dir).stage(name) / "pairs.jsonl"
    if name.endswith("/pairs") and pairs_file.exists():
        table = wandb.Table(columns=["prompt_id", "prompt", "chosen", "rejected", "reward_chosen", "reward_rejected"])
        with pairs_file.open() as f:
            for i, line in enumerate(f):
                if i >= 50:
                    break
                p = json.loads(line)
                table.add_data(p["prompt_id"], p["prompt"], p["chosen"], p["rejected"], p["reward_chosen"],
                               p["reward_rejected"])
        run.log({"iteration": parse_stage(name)[1], "iter/sample_pairs": table})


def finish(cfg: DictConfig, run_dir: Path, rows: list[dict] | None = None) -> None:
    """End of the pipeline: the config and the results as artifacts (and the results as a table); close the run."""
    global _run
    if not enabled(cfg):
        return
    import wandb

    run = start(cfg, run_dir)
    config = wandb.Artifact(f"config-{run.id}", type="config")
    hydra_cfg = RunPaths(run_dir).hydra_config
    if hydra_cfg.exists():
        config.add_file(str(hydra_cfg), name="config.yaml")
    else:
        with config.new_file("config.yaml") as f:
            f.write(OmegaConf.to_yaml(OmegaConf.create(_secret_free(cfg))))
    run.log_artifact(config)
    results = RunPaths(run_dir).results
    if results.exists():
        art = wandb.Artifact(f"results-{run.id}", type="results")
        art.add_file(str(results), name="results.jsonl")
        run.log_artifact(art)
    if rows:
        cols = ["model", "iteration", "eval_avg", "eval_avg_stderr", "eval_acc_norm_avg",
                "eval_acc_norm_avg_stderr", "n_pairs", "consistency_mean"]
        table = wandb.Table(columns=cols)
        for r in rows:
            table.add_data(r.get("model"), r.get("iteration"), r.get("eval_avg"), r.get("eval_avg_stderr"),
                           r.get("eval_acc_norm_avg"), r.get("eval_acc_norm_avg_stderr"), r.get("n_pairs"),
                           (r.get("consistency") or {}).get("mean"))
        run.log({"results": table})
    run.finish()
    _run = None
