"""The CREAM pipeline: an ordered list of stages, each writing one folder of the run dir.

    base         M0 (built offline for the tiny default; a hub id or folder otherwise)
    sft          M0 -> M1 on the labeled seed set
    iter_t/      for t = 1..T with policy M_t:
      sample       N responses per prompt of slice t of the unlabeled pool
      reward       rewards of M_t and of M_{t-1} for every response (+ M_t's log-probs)
      consistency  per-prompt agreement of the two rankings, dataset-level C
      pairs        best vs worst under M_t; ties dropped
      dpo          M_t -> M_{t+1} with the consistency-regularized DPO loss (reference = M_t)
    eval/M<k>    every model M0..M_{T+1}
    results.jsonl

Stages talk only through files.  Each stage folder ends with ``manifest.json`` (see ``artifacts``);
rerunning the same command skips stages whose manifest matches and continues from the first that
does not.  A stage whose config or inputs changed is an error by default
(``pipeline.on_config_change=redo`` redoes it, and everything downstream, keeping the old outputs in
``_stale/``).
"""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cream import artifacts
from cream.config import validate_config
from cream.errors import ArtifactError, ConfigChanged, CreamError
from cream.paths import MANIFEST, RunPaths, eval_stage, iteration_stage, model_stage
from cream.report import memory, wandb_log
from cream.report.results import print_results, print_timings, write_results
from cream.stages import base, consistency, dpo, evaluate, pairs, reward, sample, sft
from cream.stages import rewarder as rewarder_stage
from cream.training import distributed

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every stage gets: the config and the run dir, and where each model M_k lives."""

    cfg: DictConfig
    run_dir: Path

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.run_dir)

    @property
    def iterations(self) -> int:
        return int(self.cfg.pipeline.iterations)

    def stage_dir(self, name: str) -> Path:
        return self.paths.stage(name)

    def model_path(self, k: int) -> str:
        """Where M_k is: M0 the base, M1 the SFT model, M_{t+1} the model trained in iteration t."""
        if k == 0:  # the base stage writes M0 when it builds it (tiny) or converts it (GGUF)
            name = self.cfg.model.name_or_path
            written = name is None or self.cfg.model.gguf_file
            return str(self.paths.model(0)) if written else str(name)
        return str(self.paths.model(k))


@dataclass
class Stage:
    name: str                       # also its folder, relative to the run dir
    fn: Callable[..., Any]          # fn(ctx, out_dir, **kwargs) writes the outputs into out_dir
    deps: list[str]                 # upstream stage names whose outputs it reads
    config: dict                    # the config values it depends on
    kwargs: dict = field(default_factory=dict)


def _select(cfg: DictConfig, keys: list[str]) -> dict:
    """The values of ``keys`` (dotted paths) as plain data: what a stage's manifest records."""
    out = {}
    for key in keys:
        value = OmegaConf.select(cfg, key)
        out[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return out


# The config each stage depends on (with ``seed``): change one of these and the stage is out of date.
MODEL = ["model.name_or_path", "model.tiny", "model.dtype", "model.max_length", "model.max_prompt_length"]
GGUF = "model.gguf_file"  # recorded only when set (older run dirs stay valid)
TRAIN = ["trainer.precision", "trainer.accumulate_grad_batches", "trainer.gradient_clip_val"]
LORA = "model.lora"  # recorded by the training stages only when set (older run dirs stay valid)
DATA = ["data.benchmarks", "data.dir", "data.source", "data.n_seed", "data.seed", "data.pool"]
EVAL = ["eval.benchmarks", "eval.splits", "eval.limit", "eval.modes", "eval.max_new_tokens", "eval.extraction",
        "eval.loglik_chat_template", "data.dir", "data.source",
        "data.eval_files"]
GENERATE_LIMIT = "eval.generate_limit"  # recorded only when set (older run dirs stay valid)
# inference.* keys each stage depends on, recorded only when not null/auto (older run dirs stay valid)
INFERENCE = {"sample": ["inference.sampling_dtype", "inference.decode"], "reward": ["inference.reward_dtype"],
             "eval": ["inference.eval_dtype", "inference.loglik_dtype"]}


def _inference(cfg: DictConfig, stage: str) -> list[str]:
    return [k for k in INFERENCE[stage] if OmegaConf.select(cfg, k) not in (None, "auto")]


def plan(cfg: DictConfig) -> list[Stage]:
    """Every stage of the run, in order, with the stages and config values it depends on."""
    def keys(*groups: list[str] | str) -> dict:
        flat = [k for g in groups for k in ([g] if isinstance(g, str) else g)]
        return _select(cfg, ["seed", *flat])

    train = [*TRAIN, *([LORA] if OmegaConf.select(cfg, LORA) is not None else [])]
    model = [*MODEL, *([GGUF] if OmegaConf.select(cfg, GGUF) is not None else [])]
    ev = [*EVAL, *([GENERATE_LIMIT] if OmegaConf.select(cfg, GENERATE_LIMIT) is not None else []), *_inference(cfg, "eval")]
    rewarder = instantiate(cfg.rewarder)  # (cheap: no model is loaded) its training hooks decide two stages' inputs
    stages = [
        Stage("base", base.run, [], keys(model)),
        Stage(eval_stage(0), evaluate.run, ["base"], keys(model, ev), {"k": 0}),
        # a rewarder that trains with the policy (the self-reward head): its config is part of SFT's
        Stage("sft", sft.run, ["base"], keys(model, DATA, train, "sft", *(["rewarder"] if rewarder.trains_with_policy else []))),
        Stage(eval_stage(1), evaluate.run, ["sft"], keys(model, ev), {"k": 1}),
    ]
    fitted = ["rewarder"] if rewarder.trains else []  # e.g. a reward model trained from M1
    if rewarder.trains:
        stages.append(Stage("rewarder", rewarder_stage.run, ["sft"], keys(model, DATA, train, "rewarder")))
    for t in range(1, cfg.pipeline.iterations + 1):
        policy, previous = model_stage(t), model_stage(t - 1)
        sample_, reward_, consistency_, pairs_, dpo_ = (iteration_stage(s, t) for s in ("sample", "reward", "consistency", "pairs", "dpo"))
        stages += [
            Stage(sample_, sample.run, [policy], keys(model, DATA, "data.n_prompts", "data.prompts", "sampling", "sampler",
                                                       _inference(cfg, "sample")), {"t": t}),
            Stage(reward_, reward.run, sorted({sample_, policy, previous, "base", *fitted}),
                  keys(model, "rewarder", _inference(cfg, "reward")), {"t": t}),
            Stage(consistency_, consistency.run, [reward_], keys("consistency"), {"t": t}),
            Stage(pairs_, pairs.run, [sample_, reward_, consistency_], keys(), {"t": t}),
            Stage(dpo_, dpo.run, [pairs_, policy], keys(model, train, "dpo", "loss", "regularizer"), {"t": t}),
            Stage(eval_stage(t + 1), evaluate.run, [dpo_], keys(model, ev), {"k": t + 1}),
        ]
    return stages


def _current_manifest(ctx: Context, stage: Stage, done: dict[str, dict]) -> dict:
    return {
        "stage": stage.name,
        "config": stage.config,
        "config_hash": artifacts.config_hash(stage.config),
        "inputs": {d: done[d]["digest"] for d in stage.deps},
    }


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def check_same_config(folder: Path, have: dict, config: dict) -> None:
    """Raise ConfigChanged, naming every changed key, when the manifest ``have`` was made from another config."""
    if have.get("config_hash") != artifacts.config_hash(config):
        diff = _diff(have.get("config"), config)
        raise ConfigChanged(
            f"{folder}: this stage was made with another config ({'; '.join(diff) or 'different values'}). "
            "Use a new run dir, or rerun with pipeline.on_config_change=redo to redo it and everything "
            "after it (the old outputs are moved to _stale/, not deleted)."
        )


def _is_complete(folder: Path, want: dict) -> tuple[bool, str]:
    """Does ``folder`` hold a finished stage made from ``want`` (config + inputs), outputs intact?"""
    path = folder / MANIFEST
    if not path.exists():
        return False, "not finished"
    try:
        have = artifacts.read_json(path)
    except ArtifactError:
        return False, "manifest unreadable"
    check_same_config(folder, have, want["config"])
    if have.get("inputs") != want["inputs"]:
        return False, "its inputs changed"
    for rel, meta in have.get("outputs", {}).items():
        p = folder / rel
        if not p.exists() or p.stat().st_size != meta["size"]:
            return False, f"output {rel} missing or changed"
    return True, "ok"


def _archive(folder: Path, run_dir: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        dest = RunPaths(run_dir).stale / f"{folder.relative_to(run_dir).as_posix().replace('/', '__')}-{time.strftime('%Y%m%d-%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(dest))
        log.warning("moved the outdated outputs of %s to %s", folder, dest)


# Stages every rank runs when several processes do (training: Lightning's strategy; sampling and scoring:
# inputs sharded across ranks, see cream.training.distributed).  The others run on rank 0 while the rest wait.
COLLECTIVE_STAGES = ("sft", "sample", "reward", "dpo", "eval")


def run_stage(ctx: Context, stage: Stage, done: dict[str, dict]) -> tuple[dict, bool]:
    """Run ``stage`` unless its folder already holds a matching result; returns (manifest, ran).

    With several processes rank 0 decides, prepares the folder and writes the manifest; every rank
    gets rank 0's decision and manifest (so all of them skip or run the same stages)."""
    want = _current_manifest(ctx, stage, done)
    main = distributed.is_main()
    try:
        decision = _prepare_stage(ctx, stage, want) if main else None
    except CreamError as e:
        if not distributed.active():
            raise
        decision = e
    decision = distributed.broadcast(decision)
    if isinstance(decision, Exception):
        raise decision
    manifest, why = decision
    if manifest is not None:
        log.info("[%s] complete, skipped", stage.name)
        return manifest, False
    log.info("[%s] running (%s)", stage.name, why)
    folder = ctx.stage_dir(stage.name)
    everyone = stage.name.split("/")[-1] in COLLECTIVE_STAGES or stage.name.startswith("eval/")
    reset_ok = memory.reset_peaks()
    t0 = time.perf_counter()
    summary = {}
    if main or everyone:
        with distributed.collective(everyone):
            summary = stage.fn(ctx, folder, **stage.kwargs) or {}
    seconds = time.perf_counter() - t0
    mem = memory.peaks(reset_ok)
    manifest = None
    if main:
        log.info("[%s] done in %.1f s, peak RSS %.0f MB%s%s", stage.name, seconds, mem["peak_rss_mb"],
                 f", peak GPU {mem['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in mem else "", _brief(summary))
        manifest = dict(want, outputs=artifacts.output_files(folder), summary=summary, seconds=round(seconds, 3), memory=mem)
        manifest["digest"] = artifacts.manifest_digest(manifest)
        artifacts.write_json(folder / MANIFEST, manifest)
        (folder / ".inprogress.json").unlink(missing_ok=True)
    return distributed.broadcast(manifest), True  # (the broadcast is also the barrier after the stage)


def _brief(summary: dict) -> str:
    """The scalar entries of a stage's summary, for its one-line log."""
    items = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()
             if (isinstance(v, (int, float)) and not isinstance(v, bool)) or (isinstance(v, str) and len(v) <= 60)]
    return (": " + ", ".join(items)) if items else ""


def _prepare_stage(ctx: Context, stage: Stage, want: dict) -> tuple[dict | None, str]:
    """(its manifest, "ok") when the stage is complete; else (None, why), its folder made ready to run."""
    folder = ctx.stage_dir(stage.name)
    try:
        complete, why = _is_complete(folder, want)
    except ConfigChanged:
        if ctx.cfg.pipeline.on_config_change != "redo":
            raise
        _archive(folder, ctx.run_dir)
        complete, why = False, "config changed"
    if complete:
        return artifacts.read_json(folder / MANIFEST), why
    # A half-written stage: keep its checkpoints only if it was started with the same config and inputs.
    marker = folder / ".inprogress.json"
    if folder.exists():
        same = marker.exists() and artifacts.read_json(marker) == want
        if not same and (folder / MANIFEST).exists():
            _archive(folder, ctx.run_dir)  # a finished stage whose inputs changed: keep it aside
        elif not same:
            shutil.rmtree(folder)  # half-written by another config: nothing finished to keep
    folder.mkdir(parents=True, exist_ok=True)
    artifacts.write_json(marker, want)
    return None, why


def preflight(ctx: Context, stages: list[Stage]) -> None:
    """Refuse a run dir made with another config before anything runs (unless on_config_change=redo)."""
    if ctx.cfg.pipeline.on_config_change == "redo":
        return
    for stage in stages:
        path = ctx.paths.manifest(stage.name)
        if not path.exists():
            continue
        check_same_config(path.parent, artifacts.read_json(path), stage.config)


def _keep_hydra_record(run_dir: Path, accepted: bool) -> None:
    """Hydra rewrites ``.hydra/`` on every invocation; a refused rerun must not replace the record of the
    config the run dir was made with.  Accepted: save a copy.  Refused: put the saved copy back."""
    live, saved = run_dir / ".hydra", run_dir / ".hydra.accepted"
    if accepted and live.is_dir():
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(live, saved)
    elif not accepted and saved.is_dir():
        shutil.rmtree(live, ignore_errors=True)
        shutil.copytree(saved, live)


def run(cfg: DictConfig, run_dir: Path) -> list[dict]:
    """Run (or resume) the whole pipeline in ``run_dir``; returns the rows of results.jsonl."""
    distributed.init()  # several processes (torchrun / srun): one group for every stage
    ctx = Context(cfg, Path(distributed.broadcast(str(run_dir))))  # rank 0's run dir for all
    main = distributed.is_main()
    try:
        validate_config(cfg)
        distributed.check_launch(cfg.trainer)
        stages = plan(cfg)
        preflight(ctx, stages)
    except CreamError:
        if main:
            _keep_hydra_record(ctx.run_dir, accepted=False)
        raise
    if main:
        _keep_hydra_record(ctx.run_dir, accepted=True)
    done: dict[str, dict] = {}
    ran: dict[str, float] = {}
    for stage in stages:
        # a stage redone changes its output digests, so its dependents see new inputs and redo too
        manifest, did_run = run_stage(ctx, stage, done)
        done[stage.name] = manifest
        ran[stage.name] = manifest.get("seconds", 0.0) if did_run else 0.0
        if not main:
            continue
        if did_run and stage.name.startswith("eval/"):
            write_results(ctx, done)
        if did_run:  # per-iteration / per-model metrics: run-dir metrics.csv, and wandb with logger=wandb
            wandb_log.log_stage(cfg, ctx.run_dir, stage.name, manifest)
    distributed.shutdown()  # every rank is done with collectives; rank 0 writes the summary alone
    if not main:
        return []
    rows = write_results(ctx, done)
    wandb_log.finish(cfg, ctx.run_dir, rows)  # logger=wandb: config and results as artifacts
    print_results(rows)
    print_timings(done, ran)
    artifacts.write_json(ctx.paths.timings, {k: {"seconds": v.get("seconds"), "ran": ran[k] > 0, **v.get("memory", {})}
                                                       for k, v in done.items()})
    return rows
