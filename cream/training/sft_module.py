"""Supervised fine-tuning, M0 -> M1: next-token loss on response tokens only."""
from __future__ import annotations

import lightning as L
import torch

from cream.models import scoring
from cream.training.optim import adamw_cosine


class SFTModule(L.LightningModule):
    """Cross-entropy on the target tokens; prompt and padding positions carry label -100."""

    def __init__(self, model, lr: float, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 total_steps: int = 1):
        super().__init__()
        self.model = model.train()  # from_pretrained returns eval mode
        self.lr, self.weight_decay, self.warmup_ratio, self.total_steps = lr, weight_decay, warmup_ratio, total_steps

    def training_step(self, batch, batch_idx):
        loss = causal_lm_loss(self.model, batch["input_ids"], batch["attention_mask"], batch["labels"])
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


def causal_lm_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:func:`sft_loss` of the model's logits. When the batch's logits would exceed
    ``scoring.LOGIT_CHUNK_ELEMENTS`` (SmolLM2's 49k vocabulary: 8 rows x 768 tokens are 1.2 GB of float32 logits,
    plus their log-softmax and gradients), the LM head runs only at positions with a label, in chunks recomputed
    in the backward (``scoring.target_logps``): the same mean of -log p(label), one chunk's logits at a time."""
    head = model.get_output_embeddings()
    if input_ids.numel() * head.weight.shape[0] <= scoring.LOGIT_CHUNK_ELEMENTS:
        return sft_loss(model(input_ids=input_ids, attention_mask=attention_mask).logits, labels)
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)  # position t predicts label t + 1
    return -scoring.target_logps(head, hidden[rows, cols], labels[rows, cols + 1]).mean()
