"""Train a Bradley-Terry reward model on preference pairs (the work of ``cream-train-rm``, in cream/cli.py).

    cream-train-rm --pairs pairs.jsonl --model <causal LM folder or hub id> --out <RM folder> [--epochs 2 ...]

``pairs.jsonl`` holds one pair per line: ``{"prompt", "chosen", "rejected"}``, the prompt as the model
sees it (chat template applied, if any; ``--render`` applies the model's own template to raw prompts).
The folder written (backbone + tokenizer via ``save_pretrained``, ``reward_head.safetensors``,
``reward_model.json``, ``logs/metrics.csv``) is what ``rewarder=reward_model rewarder.path=<folder>`` reads.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from omegaconf import OmegaConf

from cream.data.prompts import render
from cream.errors import ConfigError
from cream.models.loading import load_tokenizer
from cream.models.scoring import pad_batch
from cream.models.tokens import encode_pair
from cream.paths import conf_dir
from cream.progress import bars, show_progress, step_lines
from cream.training.rm_module import RewardModel, RewardModelModule

log = logging.getLogger(__name__)


class PairBatches:
    """Encoded pairs; ``collate`` lays a batch of B pairs out as 2B right-padded rows, chosen first."""

    def __init__(self, tokenizer, pairs: Sequence[dict], max_length: int, max_prompt_length: int):
        self.pad_id = tokenizer.pad_token_id
        self.items, self.n_truncated = [], 0
        for j, p in enumerate(pairs):
            missing = {"prompt", "chosen", "rejected"} - set(p)
            if missing:
                raise ValueError(f"pair {j}: missing field(s) {sorted(missing)}; each pair needs prompt, chosen, "
                                 "rejected")
            c, _, t1 = encode_pair(tokenizer, p["prompt"], p["chosen"], max_length, max_prompt_length)
            r, _, t2 = encode_pair(tokenizer, p["prompt"], p["rejected"], max_length, max_prompt_length)
            self.items.append((c, r))
            self.n_truncated += t1 or t2

    def collate(self, items):
        seqs = [c for c, _ in items] + [r for _, r in items]
        b = pad_batch(seqs, [0] * len(seqs), self.pad_id)
        b.pop("response_mask")
        return b


RM_CONFIG = conf_dir() / "rewarder" / "reward_model.yaml"


@dataclass
class RMTraining:
    """How a reward model is trained: ``rewarder.train`` in conf/rewarder/reward_model.yaml, the one place of
    the defaults (the pipeline's quick RM and ``cream-train-rm`` both read them)."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    warmup_ratio: float

    @classmethod
    def of(cls, values: dict, where: str) -> RMTraining:
        """From a config block; an unknown or missing key is refused, naming the accepted ones."""
        names = [f.name for f in fields(cls)]
        unknown, missing = sorted(set(values) - set(names)), [n for n in names if n not in values]
        if unknown or missing:
            raise ConfigError(f"{where}: "
                              f"{'unknown key(s) ' + str(unknown) if unknown else 'missing key(s) ' + str(missing)}; "
                              f"expected exactly: {', '.join(names)}")
        v = values
        return cls(int(v["epochs"]), float(v["lr"]), int(v["batch_size"]), float(v["weight_decay"]),
                   float(v["warmup_ratio"]))

    @classmethod
    def defaults(cls) -> RMTraining:
        return cls.of(OmegaConf.to_container(OmegaConf.load(RM_CONFIG).train), f"{RM_CONFIG}: train")


def train_reward_model(model_path: str | os.PathLike, pairs: Sequence[dict], out_dir: str | os.PathLike, *,
                       epochs: int, lr: float, batch_size: int, weight_decay: float, warmup_ratio: float,
                       max_length: int = 512, max_prompt_length: int = 384, seed: int = 0,
                       accelerator: str = "cpu", precision: str = "32-true", dtype: str = "float32",
                       trust_remote_code: bool = False, render_prompts: bool = False) -> dict:
    """Train a reward model from the causal LM at ``model_path`` on ``pairs`` and save it to ``out_dir``."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    if not pairs:
        raise ValueError("no preference pairs to train the reward model on")
    out = Path(out_dir)
    L.seed_everything(seed, verbose=False)
    tok = load_tokenizer(model_path, trust_remote_code)
    if render_prompts:
        pairs = [dict(p, prompt=render(tok, p["prompt"])) for p in pairs]
    data = PairBatches(tok, pairs, max_length, max_prompt_length)
    loader = DataLoader(data.items, batch_size=batch_size, shuffle=True, collate_fn=data.collate,
                        generator=torch.Generator().manual_seed(seed))
    rm = RewardModel.from_lm(model_path, dtype, trust_remote_code)
    module = RewardModelModule(rm, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                               total_steps=epochs * len(loader))
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, precision=precision,
                        logger=CSVLogger(str(out), name="logs", version=""), enable_checkpointing=False,
                        enable_model_summary=False, log_every_n_steps=1, gradient_clip_val=1.0,
                        enable_progress_bar=show_progress() and bars(), callbacks=step_lines("train reward model"))
    trainer.fit(module, loader)
    rm.cpu().save(out, tok)
    m = trainer.callback_metrics
    return {"n_pairs": len(pairs), "n_truncated": data.n_truncated, "steps": trainer.global_step,
            **{k: float(v) for k, v in m.items() if k.startswith("train/")}}


@torch.inference_mode()
def score_responses(rm, tokenizer, prompts: Sequence[str], responses: Sequence[str], *, max_length: int,
                    max_prompt_length: int, batch_size: int = 32) -> list[float]:
    """The reward of every (prompt, response), in input order (length-sorted batches)."""
    seqs = [encode_pair(tokenizer, p, r, max_length, max_prompt_length)[0] for p, r in zip(prompts, responses)]
    device = next(rm.parameters()).device
    rm.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = [0.0] * len(seqs)
    for b in range(0, len(order), batch_size):
        idx = order[b: b + batch_size]
        batch = pad_batch([seqs[i] for i in idx], [0] * len(idx), tokenizer.pad_token_id)
        r = rm(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        for i, v in zip(idx, r.tolist()):
            out[i] = v
    return out
