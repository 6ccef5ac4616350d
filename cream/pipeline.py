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

Stages talk only through files (rows: ``cream.records``).  Each stage module declares, next to its
``run(ctx, out, ...)``, the config keys that make its result stale and whether every rank runs it
(``cream.stages.context``); this module only wires them together and runs them.
Each stage folder ends with ``manifest.json`` (see ``artifacts``);
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
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from omegaconf import DictConfig

from cream import artifacts, distributed, faults
from cream.config import validate_config
from cream.errors import ArtifactError, ConfigChanged, CreamError
from cream.paths import MANIFEST, RunPaths, eval_stage, iteration_stage, model_stage
from cream.report import memory, wandb_log
from cream.report.attempts import Attempt
from cream.report.results import print_results, print_timings, write_results
from cream.stages import base, consistency, dpo, evaluate, pairs, reward, sample, sft
from cream.stages import rewarder as rewarder_stage
from cream.stages.context import Context

log = logging.getLogger(__name__)


@dataclass
class Stage:
    name: str                       # also its folder, relative to the run dir
    fn: Callable[..., Any]          # fn(ctx, out_dir, **kwargs) writes the outputs into out_dir
    deps: list[str]                 # upstream stage names whose outputs it reads
    config: dict                    # the config values it depends on
    kwargs: dict = field(default_factory=dict)
    every_rank: bool = False        # with several processes, every rank runs it (else rank 0, the others wait)


def plan(ctx: Context) -> list[Stage]:
    """Every stage of the run, in order, with the stages and config values it depends on."""
    def stage(name: str, module: ModuleType, deps: list[str], **kwargs) -> Stage:
        return Stage(name, module.run, deps, ctx.stale_config(module.stale_keys(ctx, **kwargs)), kwargs,
                     module.EVERY_RANK)

    stages = [
        stage("base", base, []),
        stage(eval_stage(0), evaluate, ["base"], k=0),
        stage("sft", sft, ["base"]),
        stage(eval_stage(1), evaluate, ["sft"], k=1),
    ]
    fitted = ["rewarder"] if ctx.rewarder.trains else []  # e.g. a reward model trained from M1
    if ctx.rewarder.trains:
        stages.append(stage("rewarder", rewarder_stage, ["sft"]))
    for t in range(1, ctx.iterations + 1):
        policy, previous = model_stage(t), model_stage(t - 1)
        sample_, reward_, consistency_, pairs_, dpo_ = (iteration_stage(s, t)
                                                        for s in ("sample", "reward", "consistency", "pairs", "dpo"))
        stages += [
            stage(sample_, sample, [policy], t=t),
            stage(reward_, reward, sorted({sample_, policy, previous, "base", *fitted}), t=t),
            stage(consistency_, consistency, [reward_], t=t),
            stage(pairs_, pairs, [sample_, reward_, consistency_], t=t),
            stage(dpo_, dpo, [pairs_, policy], t=t),
            stage(eval_stage(t + 1), evaluate, [dpo_], k=t + 1),
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
        dest = (RunPaths(run_dir).stale
                / f"{folder.relative_to(run_dir).as_posix().replace('/', '__')}-{time.strftime('%Y%m%d-%H%M%S')}")
        # two redos in one second
        dest = next(d for k in range(1000) if not (d := dest.with_name(dest.name + (f"-{k}" if k else ""))).exists())
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(dest))
        log.warning("moved the outdated outputs of %s to %s", folder, dest)


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
    everyone = stage.every_rank
    reset_ok = memory.reset_peaks()
    t0 = time.perf_counter()
    summary = {}
    attempt = Attempt(folder) if main else nullcontext()  # this attempt's time, kept if a kill cuts it short
    if main or everyone:
        with attempt:
            faults.at_stage_start(folder)  # CREAM_FAULT=<stage>:<action> (tests: a kill at an exact point)
            with distributed.collective(everyone):
                summary = stage.fn(ctx, folder, **stage.kwargs) or {}
    seconds = time.perf_counter() - t0
    mem = memory.peaks(reset_ok)
    manifest = None
    if main:
        head = (f"[{stage.name}] done in {seconds:.1f} s, peak RSS {mem['peak_rss_mb']:.0f} MB"
                + (f", peak GPU {mem['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in mem else ""))
        log.info("%s%s", head, _brief(summary, SUMMARY_LINE - len(head)))
        manifest = dict(want, outputs=artifacts.output_files(folder), summary=summary,
                        seconds=round(seconds, 3), memory=mem)
        if earlier := attempt.summary():  # the stage ran in pieces: `seconds` are the last attempt's
            manifest["earlier_attempts"] = earlier
        manifest["digest"] = artifacts.manifest_digest(manifest)
        artifacts.write_json(folder / MANIFEST, manifest)
        (folder / ".inprogress.json").unlink(missing_ok=True)
    return distributed.broadcast(manifest), True  # (the broadcast is also the barrier after the stage)


SUMMARY_LINE = 160  # characters: a stage's "done" line fits a log viewer; the whole summary is in its manifest.json


def _brief(summary: dict, room: int = SUMMARY_LINE) -> str:
    """The scalar entries of a stage's summary (standard errors left out), for its one-line log, cut to ``room``
    characters; "..." when entries were left out."""
    items = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()
             if not k.endswith("_stderr") and ((isinstance(v, (int, float)) and not isinstance(v, bool))
                                               or (isinstance(v, str) and len(v) <= 40))]
    text = ""
    for i, item in enumerate(items):
        more = ", ..." if i + 1 < len(items) else ""
        if len(text) + len(item) + 2 + len(more) > room:
            return f"{text}, ..." if text else ""
        text = f"{text}, {item}" if text else f": {item}"
    return text


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
        stages = plan(ctx)
        preflight(ctx, stages)
    except CreamError:
        if main:
            _keep_hydra_record(ctx.run_dir, accepted=False)
        raise
    if main:
        _keep_hydra_record(ctx.run_dir, accepted=True)
    done: dict[str, dict] = {}
    ran: dict[str, float] = {}
    started = datetime.now(UTC).isoformat(timespec="microseconds")  # also names this invocation's line
    for stage in stages:
        # a stage redone changes its output digests, so its dependents see new inputs and redo too
        manifest, did_run = run_stage(ctx, stage, done)
        done[stage.name] = manifest
        ran[stage.name] = manifest.get("seconds", 0.0) if did_run else 0.0
        if not main:
            continue
        record_timing(ctx.paths.timings, stage.name, manifest, did_run)
        record_invocation(ctx.paths.invocations, started, ran, finished=False)
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
    record_invocation(ctx.paths.invocations, started, ran, finished=True)
    return rows


def record_timing(path: Path, name: str, manifest: dict, ran: bool) -> None:
    """Add a stage to ``timings.json`` as soon as it is done or found complete, unless it has a record.

    The record (``seconds``, ``ran``, peak memory) is the first invocation's that reached the stage: ``ran`` is
    true when it computed the stage, false when it found the stage complete (a folder copied from another run
    dir).  Later invocations that skip the stage leave it as it is (``invocations.jsonl`` lists what each one
    ran and skipped); one that recomputes the stage (``pipeline.on_config_change=redo``) replaces it.  A stage
    that kills made run in pieces also has ``earlier_attempts`` (``cream.report.attempts``): ``seconds`` are then
    the last attempt's alone."""
    records = artifacts.read_json(path) if path.exists() else {}
    if ran or name not in records:
        records[name] = {"seconds": manifest.get("seconds"), "ran": ran, **manifest.get("memory", {})}
        if "earlier_attempts" in manifest:
            records[name]["earlier_attempts"] = manifest["earlier_attempts"]
        artifacts.write_json(path, records)


def record_invocation(path: Path, started: str, ran: dict[str, float], finished: bool) -> None:
    """This invocation's line of ``invocations.jsonl`` (added, then updated after every stage): its start (UTC),
    the stages it ran and those it skipped so far, and whether it reached the end (false: killed or failed)."""
    rows = artifacts.read_jsonl(path) if path.exists() else []
    if rows and rows[-1].get("started") == started:
        rows.pop()
    rows.append({"started": started, "finished": finished, "ran": [k for k, s in ran.items() if s > 0],
                 "skipped": [k for k, s in ran.items() if s == 0]})
    artifacts.write_jsonl(path, rows)
