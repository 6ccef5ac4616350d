"""A Lightning Trainer for a training stage: CSV logs (+ wandb) with lr and grad_norm per optimizer step,
last.ckpt for resume (removed once the stage's model is saved unless ``trainer.cream.keep_checkpoints=true``)."""
from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig, OmegaConf

from cream import artifacts, distributed
from cream.artifacts import atomic_write
from cream.errors import ArtifactError, ConfigError
from cream.faults import StepFault
from cream.models.loading import DTYPES
from cream.progress import bars, show_progress, step_lines
from cream.training import lora


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file and renamed: a kill mid-save leaves the previous one intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)


class TrackConsumed(Callback):
    """Tells the train loader how many batches of this epoch are done (saved in ``last.ckpt``)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loader = trainer.fit_loop._combined_loader.flattened[0] if trainer.fit_loop._combined_loader else None
        if hasattr(loader, "consumed"):
            loader.consumed = batch_idx + 1

    def on_train_epoch_end(self, trainer, pl_module):
        loader = trainer.fit_loop._combined_loader.flattened[0] if trainer.fit_loop._combined_loader else None
        if hasattr(loader, "consumed"):
            loader.consumed = 0


class StepStats(Callback):
    """Per optimizer step: ``train/lr`` (the first param group's) and ``train/grad_norm``, the global L2
    norm of the gradients before clipping (as HF Trainer and TRL report it; under FSDP summed over shards)."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        from lightning.pytorch.strategies import FSDPStrategy

        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        sq = torch.stack([g.detach().float().pow(2).sum() for g in grads]).sum() if grads else torch.zeros(())
        if isinstance(trainer.strategy, FSDPStrategy) and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sq)
        pl_module.log("train/grad_norm", sq.sqrt(), on_step=True, on_epoch=False)
        pl_module.log("train/lr", float(optimizer.param_groups[0]["lr"]), on_step=True, on_epoch=False)


class StageCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` (weights + optimizer state) for resuming a stage; removed by
    :func:`save_model` once the stage's model is saved, unless ``keep`` (``trainer.cream.keep_checkpoints=true``)."""

    def __init__(self, dirpath: Path, every: int, keep: bool, minutes: float | None = None):
        super().__init__(dirpath=str(dirpath), save_last=True, save_top_k=0, every_n_train_steps=every,
                         save_on_train_epoch_end=True)
        # Lightning's constructor takes one trigger, but its check at each step's end saves when either the step
        # or the time interval has come (the time decision broadcast from rank 0), so the time one is set here
        self._train_time_interval = timedelta(minutes=minutes) if minutes else None
        self.keep = keep

    def remove(self) -> None:
        if not self.keep and distributed.is_main() and self.dirpath and Path(self.dirpath).is_dir():
            shutil.rmtree(self.dirpath)


def _stage_name(out: Path) -> str:
    """``sft`` or ``iter_t/dpo``: the stage a training folder belongs to (for progress lines)."""
    return "/".join(out.parts[-2:]) if out.parent.name.startswith("iter_") else out.name


def make_trainer(cfg: DictConfig, out: Path, max_epochs: int, loggers: Sequence[Logger] = (),
                 accumulate: int | None = None) -> L.Trainer:
    """A Lightning Trainer: every key of ``trainer`` but ``trainer.cream`` (the project's own options:
    checkpoint interval and keeping here, activation checkpointing in :func:`prepare_model`, GPU size in the plan).
    It logs to ``out/logs/metrics.csv`` and to ``loggers`` (the stage's wandb logger with logger=wandb).
    ``accumulate``: batches per optimizer step in place of ``trainer.accumulate_grad_batches`` (DPO's micro-batches)."""
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    own = tcfg.pop("cream")
    if accumulate is not None:
        tcfg["accumulate_grad_batches"] = accumulate
    every = own["checkpoint_every_n_steps"]
    if isinstance(tcfg.get("strategy"), dict) and "_target_" in tcfg["strategy"]:
        from hydra.utils import instantiate  # e.g. trainer=fsdp: a strategy object built by cream.training.strategies

        tcfg["strategy"] = instantiate(tcfg["strategy"])
    # our samplers shard by rank themselves (cream.training.datamodules): Lightning must not wrap them
    tcfg.setdefault("use_distributed_sampler", False)
    _keep_earlier_log(out / "logs")
    minutes = own["checkpoint_every_minutes"]
    # flushed with each checkpoint; with a time interval, at every step (metrics.attempt<k>.csv then also holds the
    # steps after the last checkpoint, which the resumed attempt runs again)
    csv = CSVLogger(str(out), name="logs", version="", flush_logs_every_n_steps=1 if minutes else every)
    ckpt = StageCheckpoint(out / "checkpoints", every, keep=own["keep_checkpoints"], minutes=minutes)
    callbacks = [TrackConsumed(), StepStats(), ckpt, StepFault(out), *step_lines(_stage_name(out))]
    return L.Trainer(max_epochs=max_epochs, logger=[csv, *loggers], callbacks=callbacks,
                     plugins=[AtomicCheckpointIO()], enable_model_summary=False,
                     enable_progress_bar=show_progress() and bars(), default_root_dir=str(out), **tcfg)


# _keep_earlier_log moves the only file CSVLogger would delete, so its warning about deleting logs is moot
warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")


def _keep_earlier_log(logs: Path) -> None:
    """A resumed attempt: move the earlier attempt's ``metrics.csv`` to ``metrics.attempt<k>.csv``
    (CSVLogger would delete it) so the steps logged before the crash are kept."""
    if distributed.is_main() and (logs / "metrics.csv").is_file():
        k = 1 + len(list(logs.glob("metrics.attempt*.csv")))
        (logs / "metrics.csv").rename(logs / f"metrics.attempt{k}.csv")


def fit(trainer: L.Trainer, module, datamodule, out: Path) -> None:
    """Fit, resuming from ``checkpoints/last.ckpt`` when an earlier attempt of this stage left one."""
    last = out / "checkpoints" / "last.ckpt"
    if last.exists():
        check_checkpoint(last)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)


def check_checkpoint(path: Path) -> None:
    """Fail with a clear message on a truncated or corrupted checkpoint instead of deep inside Lightning."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if "state_dict" not in state or "loops" not in state:
            raise ValueError("no state_dict/loops entries")
    except Exception as e:  # noqa: BLE001 - any failure to read it means the same thing to the user
        raise ArtifactError(
            f"{path}: the training checkpoint is corrupted or truncated ({type(e).__name__}: {e}). Delete it to "
            f"restart this stage from its beginning; the stages before it are kept."
        ) from e


def training_dtype(cfg: DictConfig) -> str:
    """The dtype a training stage loads M_t in.  Mixed precision (``trainer.precision=bf16-mixed``) means
    float32 master weights with bf16 compute, so a model stored in bf16 (``model.dtype``, the Llama configs)
    is trained from float32 weights: AdamW updates at DPO's lr 1e-6 are ~1e-4 of a weight, far below
    bf16's resolution (2^-8), and would be rounded away.  With LoRA only the adapters train (peft keeps
    them in float32), so the frozen base stays in ``model.dtype``."""
    if "mixed" in cfg.trainer.precision and cfg.model.lora is None:
        return "float32"
    return cfg.model.dtype


def prepare_model(cfg: DictConfig, model):
    """The model a training stage trains: LoRA adapters on it (``model.lora``), activation checkpointing
    (``trainer.cream.activation_checkpointing``).  Returns the model to hand to the LightningModule."""
    if cfg.trainer.cream.activation_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    spec = cfg.model.lora
    if spec is not None:
        strategy = cfg.trainer.strategy
        if (isinstance(strategy, (dict, DictConfig)) and "fsdp" in str(strategy.get("_target_", ""))
                or strategy == "fsdp"):
            raise ConfigError("model.lora with trainer=fsdp is not supported: use trainer=ddp (LoRA keeps the "
                                "optimizer state small, so the model usually fits on one device)")
        model = lora.apply(model, spec)
        if cfg.trainer.cream.activation_checkpointing:
            model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
    return model


def save_model(trainer: L.Trainer, model, tokenizer, out_dir: Path, dtype: str | None = None) -> None:
    """Save the trained model as full weights (LoRA merged) in ``dtype`` (default: as trained) with
    ``save_pretrained``; rank 0 writes, then removes the stage's ``checkpoints/`` (weights + AdamW state,
    ~16 bytes per parameter) unless ``trainer.cream.keep_checkpoints=true``.  A kill before the removal resumes from
    ``last.ckpt``; one in the moment between it and the stage's manifest redoes the stage.

    Under FSDP the weights are sharded across ranks: the full state dict is gathered (every rank takes
    part) and rank 0 saves it."""
    from lightning.pytorch.strategies import FSDPStrategy

    dtype = DTYPES[str(dtype)] if dtype not in (None, "auto") else None  # auto: keep what was trained
    state = None
    if isinstance(trainer.strategy, FSDPStrategy):
        full = trainer.strategy.lightning_module_state_dict()
        state = {k[len("model."):]: v.to(dtype) if dtype and v.is_floating_point() else v
                 for k, v in full.items() if k.startswith("model.")}
    model = lora.merge(model)
    if dtype is not None and state is None:
        model = model.to(dtype)  # trained from float32 masters, stored as model.dtype
    if distributed.is_main():
        model.save_pretrained(str(out_dir), safe_serialization=True, state_dict=state)
        tokenizer.save_pretrained(str(out_dir))
        artifacts.as_umask_allows(out_dir)
    for cb in trainer.callbacks:  # the model is on disk: the optimizer checkpoint is no longer needed
        if isinstance(cb, StageCheckpoint):
            cb.remove()
