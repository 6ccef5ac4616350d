"""What every stage gets (``Context``), and the config keys stages declare as making their result stale.

Each stage module declares, next to its ``run(ctx: Context, out, ...)``:

    EVERY_RANK   whether every process runs it when several do (training: Lightning's strategy; sampling
                 and scoring: inputs sharded across ranks, see ``cream.distributed``); the others run on
                 rank 0 while the rest wait
    stale_keys(ctx, **where)  the config keys (dotted) whose values it depends on: change one and a
                 finished stage is out of date (``seed`` is always one); ``where`` is the stage's ``t`` or ``k``

The key groups below are what several stages share.  A key of ``WHEN_SET`` is recorded only when it is
set (not null), so run dirs made before the key existed stay valid.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from cream.paths import RunPaths

if TYPE_CHECKING:
    from cream.rewarders.base import Rewarder

WORLD = "trainer.devices x trainer.num_nodes"  # the training processes (recorded when more than one)
MODEL = ["model.name_or_path", "model.tiny", "model.dtype", "model.max_length", "model.max_prompt_length",
         "model.gguf_file"]
TRAIN = ["trainer.precision", "trainer.accumulate_grad_batches", "trainer.gradient_clip_val", "model.lora"]
DATA = ["data.benchmarks", "data.dir", "data.source", "data.n_seed", "data.seed", "data.pool"]
EVAL = ["eval.benchmarks", "eval.splits", "eval.limit", "eval.modes", "eval.max_new_tokens", "eval.extraction",
        "eval.loglik_chat_template", "data.dir", "data.source", "data.eval_files", "eval.generate_limit"]
# the inference.* keys each stage depends on, recorded only when not null/auto (older run dirs stay valid)
INFERENCE = {"sample": ["inference.sampling_dtype", "inference.decode"], "reward": ["inference.reward_dtype"],
             "eval": ["inference.eval_dtype", "inference.loglik_dtype"]}
WHEN_SET = {"model.gguf_file", "model.lora", "eval.generate_limit", WORLD,
            *(k for ks in INFERENCE.values() for k in ks)}
# keys inside a recorded group, left out of it while null (the controls and DPO's micro-batches, off by default)
WHEN_SET_INSIDE = {"dpo": ("rpo_alpha", "micro_batch_size"), "regularizer": ("min_c",)}


PARTS = ".parts"  # a stage's hidden scratch: what a killed attempt finished, read back by the rerun; not an output


def journal(out: Path):
    """This rank's ``cream.artifacts.Journal`` in the stage folder ``out``; ``CREAM_FAULT=<stage>:step=<n>:...``
    fires once n pieces are saved."""
    from cream import faults
    from cream.artifacts import Journal
    from cream.distributed import rank

    return Journal(out / PARTS / f"rank{rank()}.jsonl", lambda n: faults.before_part(out, n))


def writes_base(model_cfg) -> bool:
    """Whether the base stage writes M0 to ``base/model``: it builds the tiny model (``name_or_path`` null)
    or converts a GGUF checkpoint; otherwise M0 is ``name_or_path`` itself (a hub id or a folder)."""
    return model_cfg.name_or_path is None or bool(model_cfg.gguf_file)


def training_processes(cfg: DictConfig) -> int | None:
    """The processes a training stage runs on (its schedule's steps depend on them); None for one."""
    from cream.distributed import trainer_world_size

    n = trainer_world_size(cfg.trainer)
    return n if n > 1 else None


def select(cfg: DictConfig, keys: list[str]) -> dict:
    """The values of ``keys`` (dotted paths) as plain data: what a stage's manifest records (``WHEN_SET``
    keys only when set)."""
    out = {}
    for key in keys:
        value = training_processes(cfg) if key == WORLD else OmegaConf.select(cfg, key)
        if key in WHEN_SET and value in (None, "auto"):
            continue
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        if isinstance(value, dict) and key in WHEN_SET_INSIDE:
            value = {k: v for k, v in value.items() if not (k in WHEN_SET_INSIDE[key] and v is None)}
        out[key] = value
    return out


@dataclass
class Context:
    """What every stage gets: the config and the run dir, where each model M_k lives, and the rewarder."""

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
        if k == 0 and not writes_base(self.cfg.model):
            return str(self.cfg.model.name_or_path)
        return str(self.paths.model(k))

    @cached_property
    def rewarder(self) -> Rewarder:
        """The ``rewarder=`` (built once; cheap: no model is loaded until it scores)."""
        from hydra.utils import instantiate

        return instantiate(self.cfg.rewarder)

    def stale_config(self, keys: list[str]) -> dict:
        """``seed`` and the values of ``keys``: what makes a stage's result stale."""
        return select(self.cfg, ["seed", *keys])
