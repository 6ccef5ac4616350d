"""Training killed mid-epoch resumes from last.ckpt and ends with exactly the weights of an uninterrupted run."""
import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conftest import compose
from cream.models.loading import load_model, load_tokenizer
from cream.training.datamodules import SFTDataModule
from cream.training.sft_module import SFTModule
from cream.training.trainer import fit, make_trainer


class Crash(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at_step:
            raise SystemError("simulated kill")


def _train(tiny_dir, out, crash_at=None, overrides=()):
    cfg = compose(["trainer.cream.checkpoint_every_n_steps=1", *overrides])
    L.seed_everything(0, verbose=False)
    tok, model = load_tokenizer(tiny_dir), load_model(tiny_dir)
    prompts = [f"Question {i}: which gas?\n" for i in range(10)]
    dm = SFTDataModule(tok, prompts, ["carbon dioxide"] * 5 + ["oxygen"] * 5, batch_size=3, max_length=64,
                       max_prompt_length=32, seed=0)
    trainer = make_trainer(cfg, out, max_epochs=2)
    if crash_at is not None:
        trainer.callbacks.insert(0, Crash(crash_at))
    fit(trainer, SFTModule(model, lr=1e-2, warmup_ratio=0.2, total_steps=dm.steps(2)), dm, out)
    return model, trainer


@pytest.mark.parametrize("crash_at", [2, 4, 6])  # mid first epoch, at its end (4 batches/epoch), mid second
def test_resume_mid_epoch_gives_same_weights(tiny_dir, tmp_path, crash_at):
    ref, _ = _train(tiny_dir, tmp_path / "ref")
    with pytest.raises(SystemError):
        _train(tiny_dir, tmp_path / "run", crash_at=crash_at)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    resumed, trainer = _train(tiny_dir, tmp_path / "run")
    assert trainer.global_step == 8
    # the steps logged before the crash are kept next to those of the resumed attempt
    logs = tmp_path / "run" / "logs"
    steps = lambda f: {int(r["step"]) for r in csv.DictReader(f.open()) if r.get("train/loss")}  # noqa: E731
    before, after = steps(logs / "metrics.attempt1.csv"), steps(logs / "metrics.csv")
    assert before and max(before) < min(after) and before | after == set(range(8))
    for (name, a), b in zip(ref.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_a_time_interval_checkpoints_where_the_step_interval_has_not_come(tiny_dir, tmp_path):
    """trainer.cream.checkpoint_every_minutes: killed at step 5 of 8 with a step interval of 1000, training resumes
    from the last timed checkpoint (not from scratch) and ends with the uninterrupted run's weights."""
    timed = ["trainer.cream.checkpoint_every_n_steps=1000", "trainer.cream.checkpoint_every_minutes=1e-9"]
    ref, _ = _train(tiny_dir, tmp_path / "ref", overrides=timed)
    with pytest.raises(SystemError):
        _train(tiny_dir, tmp_path / "run", crash_at=5, overrides=timed)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4  # the crash comes before the checkpoint at the end of the 5th step
    resumed, trainer = _train(tiny_dir, tmp_path / "run", overrides=timed)
    assert trainer.global_step == 8
    logs = tmp_path / "run" / "logs"
    steps = lambda f: {int(r["step"]) for r in csv.DictReader(f.open()) if r.get("train/loss")}  # noqa: E731
    assert steps(logs / "metrics.csv") == set(range(4, 8))  # resumed at step 4, not 0
    for (name, a), b in zip(ref.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_a_time_interval_must_be_positive():
    from cream.config import validate_config
    from cream.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.cream.checkpoint_every_minutes.*must be > 0"):
        validate_config(compose(["trainer.cream.checkpoint_every_minutes=0"]))


@pytest.mark.parametrize("keep", [False, True])
def test_checkpoints_removed_once_the_model_is_saved(tiny_dir, tmp_path, keep):
    from cream.training.trainer import save_model

    model, trainer = _train(tiny_dir, tmp_path / "run", overrides=[f"trainer.cream.keep_checkpoints={keep}"])
    ckpts = tmp_path / "run" / "checkpoints"
    assert (ckpts / "last.ckpt").exists()  # until the model is saved, a kill resumes from it
    save_model(trainer, model, load_tokenizer(tiny_dir), tmp_path / "run" / "model")
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert ckpts.exists() == keep


def test_lr_and_grad_norm_logged_per_optimizer_step(tiny_dir, tmp_path):
    """train/lr follows the warmup-cosine schedule; train/grad_norm is the pre-clipping global norm (> 0)."""
    import math

    _train(tiny_dir, tmp_path / "run")
    rows = [r for r in csv.DictReader((tmp_path / "run" / "logs" / "metrics.csv").open()) if r.get("train/lr")]
    assert [int(r["step"]) for r in rows] == list(range(8))
    warmup = int(0.2 * 8)  # steps 0..warmup-1 ramp up; then cosine over the remaining 8 - warmup
    want = [1e-2 * ((s + 1) / (warmup + 1)
                    if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (8 - warmup))))
            for s in range(8)]
    assert [float(r["train/lr"]) for r in rows] == pytest.approx(want, rel=1e-6)
    assert all(float(r["train/grad_norm"]) > 0 for r in rows)


@pytest.mark.slow
def test_finished_pipeline_has_no_optimizer_checkpoints_and_a_rerun_skips_everything(tmp_path):
    from conftest import run_cli, stage_mtimes

    run_dir = tmp_path / "run"
    run_cli(["debug=smoke", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert (run_dir / "sft" / "model").is_dir() and (run_dir / "iter_1" / "dpo" / "model").is_dir()
    assert not list(run_dir.rglob("*.ckpt")) and not list(run_dir.rglob("checkpoints"))
    before = stage_mtimes(run_dir)
    proc = run_cli(["debug=smoke", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert stage_mtimes(run_dir) == before  # every stage skipped: no checkpoint needed to know they are done
    assert "[iter_1/dpo] complete, skipped" in proc.stdout + proc.stderr
