"""Optional wandb tracking (``logger=wandb``): one wandb run per pipeline run, grouped by sweep.

Offline unless ``WANDB_API_KEY`` is set; the key is read by wandb from the environment and never
written to logs or configs.  The run dir stays the source of truth: nothing reads wandb back.
Logged: the resolved config; per training step the Lightning metrics of SFT and DPO (prefixed with
the stage, e.g. ``iter_1/dpo/train/rewards/margins``); per iteration consistency, pairs kept/dropped
and accuracies; a table of sample pairs (prompt, chosen, rejected, both rewards).
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

_run = None


def _secret_free(cfg: DictConfig) -> dict:
    conf = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in conf.items() if "key" not in k.lower() and "token" not in k.lower()}


def start(cfg: DictConfig, run_dir: Path):
    """Start (or return) the wandb run of this pipeline run."""
    global _run
    if _run is not None:
        return _run
    import wandb

    w = cfg.logger.wandb
    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    sweep = run_dir.parent.name if run_dir.name.isdigit() else None  # multirun/<date>/<time>/<job>
    _run = wandb.init(project=w.project, group=w.group or sweep, name=str(run_dir.name), tags=list(w.tags),
                      dir=str(run_dir), config=_secret_free(cfg), mode=mode, reinit="finish_previous")
    return _run


def make_wandb_logger(cfg: DictConfig, stage: str, run_dir: Path):
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(experiment=start(cfg, Path(run_dir)), prefix=stage.replace("/", "-"))


def log_stage(cfg: DictConfig, run_dir: Path, name: str, manifest: dict) -> None:
    """Per-iteration metrics after each stage (consistency, pairs, accuracies) and the pairs table."""
    import wandb

    run = start(cfg, run_dir)
    summary = manifest.get("summary") or {}
    scalars = {f"{name}/{k}": v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key in ("eval", "eval_loglik"):
        for bench, acc in (summary.get(key) or {}).items():
            scalars[f"{name}/{key}/{bench}"] = acc
    if scalars:
        run.log(scalars)
    if name.endswith("/pairs"):
        import json

        table = wandb.Table(columns=["prompt_id", "prompt", "chosen", "rejected", "reward_chosen", "reward_rejected"])
        with (run_dir / name / "pairs.jsonl").open() as f:
            for i, line in enumerate(f):
                if i >= 50:
                    break
                p = json.loads(line)
                table.add_data(p["prompt_id"], p["prompt"], p["chosen"], p["rejected"], p["reward_chosen"], p["reward_rejected"])
        run.log({f"{name}/sample_pairs": table})


def finish() -> None:
    global _run
    if _run is not None:
        _run.finish()
        _run = None
