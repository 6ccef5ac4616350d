"""A Lightning Trainer for a training stage: CSV logs (+ wandb), last.ckpt for resume, the stage's seed."""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from cream.artifacts import ArtifactError, atomic_write


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


def make_trainer(cfg: DictConfig, out: Path, max_epochs: int, stage: str) -> L.Trainer:
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    every = tcfg.pop("checkpoint_every_n_steps", 50)
    tcfg.pop("activation_checkpointing", None)
    loggers = [CSVLogger(str(out), name="logs", version="")]
    if cfg.logger.get("wandb"):
        from cream.wandb_logging import make_wandb_logger

        loggers.append(make_wandb_logger(cfg, stage, out.parent if "/" not in stage else out.parent.parent))
    ckpt = ModelCheckpoint(dirpath=str(out / "checkpoints"), save_last=True, save_top_k=0,
                           every_n_train_steps=every, save_on_train_epoch_end=True)
    return L.Trainer(max_epochs=max_epochs, logger=loggers, callbacks=[TrackConsumed(), ckpt], plugins=[AtomicCheckpointIO()], enable_model_summary=False,
                     enable_progress_bar=os.environ.get("CREAM_PROGRESS", "1") == "1", default_root_dir=str(out), **tcfg)


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
