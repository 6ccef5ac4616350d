"""SFT: fine-tune M0 on the labeled seed set (loss on response tokens only) -> M1."""
from __future__ import annotations

from pathlib import Path

import lightning as L

from cream.data.datamodules import SFTDataModule
from cream.data.pool import seed_set
from cream.data.prompts import format_prompt, render, sft_target
from cream.models import load_model, load_tokenizer
from cream.modules.sft import SFTModule
from cream.training import fit, make_trainer


def run(ctx, out: Path) -> dict:
    cfg = ctx.cfg
    L.seed_everything(int(cfg.seed), verbose=False)
    examples = seed_set(cfg)
    tok = load_tokenizer(ctx.model_path(0), cfg.model.trust_remote_code)
    model = load_model(ctx.model_path(0), cfg.model.dtype, cfg.model.trust_remote_code)
    dm = SFTDataModule(tok, [render(tok, format_prompt(ex)) for ex in examples], [sft_target(ex) for ex in examples],
                       batch_size=int(cfg.sft.batch_size), max_length=int(cfg.model.max_length),
                       max_prompt_length=int(cfg.model.max_prompt_length), seed=int(cfg.seed))
    module = SFTModule(model, lr=float(cfg.sft.lr), weight_decay=float(cfg.sft.weight_decay), warmup_ratio=float(cfg.sft.warmup_ratio),
                       total_steps=dm.steps(int(cfg.sft.epochs), int(cfg.trainer.accumulate_grad_batches)))
    trainer = make_trainer(cfg, out, int(cfg.sft.epochs), "sft")
    fit(trainer, module, dm, out)
    model.save_pretrained(str(out / "model"), safe_serialization=True)
    tok.save_pretrained(str(out / "model"))
    return {"n_examples": len(examples), "n_truncated": dm.n_truncated, "steps": trainer.global_step,
            "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan")))}
