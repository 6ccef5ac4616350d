"""Supervised fine-tuning, M0 -> M1: next-token loss on response tokens only."""
from __future__ import annotations

import lightning as L
import torch

from cream.training.optim import adamw_cosine


class SFTModule(L.LightningModule):
    """Cross-entropy on the target tokens; prompt and padding positions carry label -100."""

    def __init__(self, model, lr: float, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 total_steps: int = 1):
        super().__init__()
        self.model = model.train()  # from_pretrained returns eval mode
        self.lr, self.weight_decay, self.warmup_ratio, self.total_steps = lr, weight_decay, warmup_ratio, total_steps

    def training_step(self, batch, batch_idx):
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = sft_loss(logits, batch["labels"])
        n = batch["labels"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/response_tokens", (batch["labels"] != -100).sum().float(), batch_size=n)
        return loss

    def configure_optimizers(self):
        return adamw_cosine(self.model, self.lr, self.weight_decay, self.warmup_ratio, self.total_steps)


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not -100."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
    )
