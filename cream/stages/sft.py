"""SFT: fine-tune M0 on the labeled seed set (loss on response tokens only) -> M1."""
from __future__ import annotations

from pathlib import Path

import lightning as L

from cream.data.datamodules import SFTDataModule
from cream.data.pool import seed_set
from cream.data.prompts import format_prompt, render, sft_target
from cream.models import load_model, load_tokenizer
from cream.modules.self_reward_head import make_sft_module, save_sft_extras
from cream.distributed import is_main, trainer_world_size
from cream.training import fit, make_trainer, prepare_model, save_model, training_dtype


def run(ctx, out: Path) -> dict:
    cfg = ctx.cfg
    L.seed_everything(int(cfg.seed), verbose=False)
    examples = seed_set(cfg)
    tok = load_tokenizer(ctx.model_path(0), cfg.model.trust_remote_code)
    model = load_model(ctx.model_path(0), training_dtype(cfg), cfg.model.trust_remote_code)  # float32 masters under *-mixed
    model = prepare_model(cfg, model)  # model.lora adapters, trainer.activation_checkpointing
    dm = SFTDataModule(tok, [render(tok, format_prompt(ex)) for ex in examples], [sft_target(ex) for ex in examples],
                       batch_size=int(cfg.sft.batch_size), max_length=int(cfg.model.max_length),
                       max_prompt_length=int(cfg.model.max_prompt_length), seed=int(cfg.seed))
    module = make_sft_module(cfg, model, lr=float(cfg.sft.lr), weight_decay=float(cfg.sft.weight_decay), warmup_ratio=float(cfg.sft.warmup_ratio),
                       total_steps=dm.steps(int(cfg.sft.epochs), int(cfg.trainer.accumulate_grad_batches),
                                                   trainer_world_size(cfg.trainer)))
    trainer = make_trainer(cfg, out, int(cfg.sft.epochs), "sft")
    fit(trainer, module, dm, out)
    save_model(trainer, model, tok, out / "model", cfg.model.dtype)  # full weights (LoRA merged); rank 0 writes
    if is_main():
        save_sft_extras(module, out / "model")  # the self-reward head, when rewarder=self_reward_head
    return {"n_examples": len(examples), "n_truncated": dm.n_truncated, "steps": trainer.global_step,
            "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan")))}
