"""SFT: fine-tune M0 on the seed set -> M1 (loss on response / assistant tokens only); or, with
``sft.skip=true``, M1 = M0: M0's weights and tokenizer are saved unchanged as ``sft/model`` (so M1 loads
from ``ctx.model_path(1)`` like a trained one) and the summary says ``skipped``.

Seed set (``data.seed.source``): ``benchmarks`` renders each labelled example as one user turn (question +
instruction) and its target; ``oasst`` / ``file`` are multi-turn conversations through the chat template,
the loss on every assistant turn and its end-of-turn token (``ConversationSFTDataModule``).
"""
from __future__ import annotations

from pathlib import Path

import lightning as L

from cream import artifacts
from cream.data.pool import seed_conversations, seed_set
from cream.data.prompts import format_prompt, render, sft_target
from cream.distributed import is_main, trainer_world_size
from cream.models.loading import load_model, load_tokenizer
from cream.report import wandb_log
from cream.stages.context import DATA, MODEL, TRAIN, Context
from cream.training.datamodules import ConversationSFTDataModule, SFTDataModule
from cream.training.sft_module import SFTModule
from cream.training.trainer import fit, make_trainer, prepare_model, save_model, training_dtype

EVERY_RANK = True  # Lightning's strategy: one process per device


def stale_keys(ctx: Context, **_) -> list[str]:
    # a rewarder that trains with the policy (the self-reward head): its config is part of SFT's
    return [*MODEL, *DATA, *TRAIN, "sft", *(["rewarder"] if ctx.rewarder.trains_with_policy else [])]


def skip(ctx: Context, out: Path) -> dict:
    """M1 = M0: M0 saved as it is (in ``model.dtype``) to ``out/model``; rank 0 writes."""
    cfg = ctx.cfg
    if is_main():
        tok = load_tokenizer(ctx.model_path(0), cfg.model.trust_remote_code)
        model = load_model(ctx.model_path(0), cfg.model.dtype, cfg.model.trust_remote_code)
        model.save_pretrained(str(ctx.paths.model(1)), safe_serialization=True)
        tok.save_pretrained(str(ctx.paths.model(1)))
        artifacts.as_umask_allows(ctx.paths.model(1))
    return {"skipped": True, "n_examples": 0, "n_truncated": 0, "steps": 0, "final_loss": None}


def run(ctx: Context, out: Path) -> dict:
    cfg = ctx.cfg
    if cfg.sft.skip:
        return skip(ctx, out)
    L.seed_everything(cfg.seed, verbose=False)
    tok = load_tokenizer(ctx.model_path(0), cfg.model.trust_remote_code)
    batch = dict(batch_size=cfg.sft.batch_size, max_length=cfg.model.max_length, seed=cfg.seed)
    extra = {}
    if cfg.data.seed.source == "benchmarks":
        examples = seed_set(cfg)
        dm = SFTDataModule(tok, [render(tok, format_prompt(ex)) for ex in examples],
                           [sft_target(ex) for ex in examples], max_prompt_length=cfg.model.max_prompt_length, **batch)
    else:
        examples = seed_conversations(cfg)
        dm = ConversationSFTDataModule(tok, [c["messages"] for c in examples], **batch)
        extra = {"n_dropped": dm.n_dropped, "seed_source": cfg.data.seed.source}
    # float32 masters under *-mixed
    model = load_model(ctx.model_path(0), training_dtype(cfg), cfg.model.trust_remote_code)
    model = prepare_model(cfg, model)  # model.lora adapters, trainer.activation_checkpointing
    rewarder = ctx.rewarder  # a rewarder may train with the policy (the self-reward head)
    optim = dict(lr=cfg.sft.lr, weight_decay=cfg.sft.weight_decay, warmup_ratio=cfg.sft.warmup_ratio,
                 total_steps=dm.steps(cfg.sft.epochs, cfg.trainer.accumulate_grad_batches,
                                      trainer_world_size(cfg.trainer)))
    module = rewarder.sft_module(model, seed=cfg.seed, **optim) or SFTModule(model, **optim)
    trainer = make_trainer(cfg, out, cfg.sft.epochs, wandb_log.stage_loggers(cfg, "sft", ctx.run_dir))
    fit(trainer, module, dm, out)
    save_model(trainer, model, tok, ctx.paths.model(1), cfg.model.dtype)  # full weights (LoRA merged); rank 0 writes
    if is_main():
        rewarder.after_sft(module, ctx.paths.model(1))  # e.g. the self-reward head saved next to M1
    return {"n_examples": len(examples), "n_truncated": dm.n_truncated, "steps": trainer.global_step,
            "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan"))), **extra}
