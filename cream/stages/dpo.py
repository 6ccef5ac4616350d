"""DPO: train M_{t+1} from M_t (reference = M_t) with the consistency-regularized loss

    L = C * l(y+, y-) + (1 - C) * l(y-, y+)

where l is the loss chosen with ``loss=`` (DPO's -log sigmoid(beta * h) by default) and C per pair comes
from the ``regularizer=`` (dataset-level C for ``cream_avg``, C_j for ``cream_dyn``, 1 for ``none``).
The reference log-probs are M_t's, computed in the reward step: no reference model is loaded here.

Extensions (off by default): ``reward.first_consistency=skip`` trains iteration 1 with C = 1 (plain DPO; the
regularizer acts from t = 2), ``regularizer.min_c`` floors C, ``dpo.rpo_alpha`` adds TRL's NLL term on y+.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate

from cream import artifacts
from cream.distributed import is_main, trainer_world_size
from cream.models.loading import load_model, load_tokenizer
from cream.paths import iteration_stage
from cream.records import PairRow, read_rows
from cream.report import wandb_log
from cream.stages.context import MODEL, TRAIN, WORLD, Context
from cream.training.datamodules import PreferenceDataModule
from cream.training.dpo_module import DPOModule
from cream.training.trainer import fit, make_trainer, prepare_model, save_model, training_dtype

EVERY_RANK = True  # Lightning's strategy: one process per device


def skips_first(cfg, t: int) -> bool:
    """``reward.first_consistency=skip``: iteration 1 trains with C = 1 (M1 vs M0 is not a consistency of two
    rewards)."""
    return t == 1 and (cfg.get("reward") or {}).get("first_consistency") == "skip"


def stale_keys(ctx: Context, t: int) -> list[str]:
    # the schedule (its number of optimizer steps) depends on the training processes too
    return [*MODEL, *TRAIN, "dpo", "loss", "regularizer", WORLD,
            *(["reward.first_consistency"] if skips_first(ctx.cfg, t) else [])]


def run(ctx: Context, out: Path, t: int) -> dict:
    cfg = ctx.cfg
    L.seed_everything(cfg.seed + t, verbose=False)
    pairs = read_rows(ctx.paths.pairs(t), PairRow)
    dataset_c = artifacts.read_json(ctx.paths.consistency_summary(t))["mean"]
    weights = instantiate(cfg.regularizer).weights([p.c for p in pairs], dataset_c)
    if skips_first(cfg, t):
        weights = [1.0] * len(pairs)
    tok = load_tokenizer(ctx.model_path(t), cfg.model.trust_remote_code)
    # float32 masters under *-mixed
    model = load_model(ctx.model_path(t), training_dtype(cfg), cfg.model.trust_remote_code)
    model = prepare_model(cfg, model)  # model.lora adapters, trainer.activation_checkpointing
    dm = PreferenceDataModule(tok, pairs, weights, batch_size=cfg.dpo.batch_size, max_length=cfg.model.max_length,
                              max_prompt_length=cfg.model.max_prompt_length, seed=cfg.seed + t,
                              micro_batch_size=cfg.dpo.get("micro_batch_size"),
                              accumulate=cfg.trainer.accumulate_grad_batches)
    module = DPOModule(model, instantiate(cfg.loss), rpo_alpha=cfg.dpo.get("rpo_alpha"), lr=cfg.dpo.lr,
                       weight_decay=cfg.dpo.weight_decay, warmup_ratio=cfg.dpo.warmup_ratio,
                       total_steps=dm.steps(cfg.dpo.epochs, cfg.trainer.accumulate_grad_batches,
                                            trainer_world_size(cfg.trainer)))
    trainer = make_trainer(cfg, out, cfg.dpo.epochs,
                           wandb_log.stage_loggers(cfg, iteration_stage("dpo", t), ctx.run_dir),
                           accumulate=dm.micro_accumulate())
    fit(trainer, module, dm, out)
    # full weights (LoRA merged); rank 0 writes
    save_model(trainer, model, tok, ctx.paths.model(t + 1), cfg.model.dtype)
    if is_main():
        # e.g. M_t's self-reward head carried to M_{t+1}
        ctx.rewarder.after_dpo(ctx.model_path(t), ctx.paths.model(t + 1))
    m = trainer.callback_metrics
    return {"n_pairs": len(pairs), "mean_weight": sum(weights) / len(weights), "steps": trainer.global_step,
            **{k: float(v) for k, v in m.items() if k.startswith("train/")}}
