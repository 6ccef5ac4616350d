"""Preference training, M_t -> M_{t+1}, with any loss of ``cream.method.losses`` and a weight per pair.

The reference model is M_t, and its log-probs of every response were computed in the reward step, so
no reference model is held in memory here: the batch carries ``ref_logp_chosen`` and
``ref_logp_rejected``.  One forward over the 2B rows (chosen then rejected) per batch, or per micro-batch
(``dpo.micro_batch_size``: the same update in several passes, for memory).
"""
from __future__ import annotations

import lightning as L
import torch

from cream.errors import TrainingDiverged
from cream.method.losses import rpo_nll
from cream.models.scoring import response_logps
from cream.training.optim import adamw_cosine


class DPOModule(L.LightningModule):
    def __init__(self, model, loss: torch.nn.Module, lr: float, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 total_steps: int = 1, rpo_alpha: float | None = None):
        super().__init__()
        self.model, self.loss = model.train(), loss  # from_pretrained returns eval mode
        self.rpo_alpha = rpo_alpha  # dpo.rpo_alpha: + rpo_alpha * NLL(y+) (TRL's rpo_alpha; None: off)
        self.lr, self.weight_decay, self.warmup_ratio, self.total_steps = lr, weight_decay, warmup_ratio, total_steps

    def training_step(self, batch, batch_idx):
        logps = response_logps(self.model, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
        chosen, rejected = logps.chunk(2)
        n_chosen, n_rejected = batch["response_mask"][:, 1:].sum(dim=1).chunk(2)  # the tokens each logp sums
        losses, metrics = self.loss(chosen, rejected, batch["ref_logp_chosen"], batch["ref_logp_rejected"],
                                    batch["weight"], chosen_tokens=n_chosen, rejected_tokens=n_rejected)
        loss = losses.mean()
        if self.rpo_alpha is not None:
            nll = rpo_nll(chosen, n_chosen)
            loss = loss + self.rpo_alpha * nll
            self.log("train/nll_loss", nll.detach(), batch_size=chosen.shape[0])
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"DPO loss is {loss.item()} at step {self.global_step} (batch {batch_idx}); training stopped. "
                "The last good checkpoint is kept in checkpoints/last.ckpt; lower dpo.lr or check the pairs."
            )
        n = chosen.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        for k, v in metrics.items():
            self.log(f"train/{k}", v.float().mean(), batch_size=n)
        self.log("train/consistency_weight", batch["weight"].mean(), batch_size=n)
        if "update_pairs" in batch:
            return self._share_of_update(losses, chosen, batch)
        return loss

    def _share_of_update(self, losses, chosen, batch):
        """A micro-batch's exact share of its update's loss: summed over the update's micro-batches these give
        the mean preference loss over all its pairs (+ rpo_alpha x the NLL pooled over all their chosen tokens),
        as one pass over the whole update would. Lightning divides each micro-batch's loss by
        accumulate_grad_batches (also for a shorter last update of the epoch), so that factor is put back."""
        share = losses.sum() / batch["update_pairs"]
        if self.rpo_alpha is not None:
            share = share + self.rpo_alpha * rpo_nll(chosen, batch["update_chosen_tokens"])
        return share * self.trainer.accumulate_grad_batches

    def configure_optimizers(self):
        return adamw_cosine(self.model, self.lr, self.weight_decay, self.warmup_ratio, self.total_steps)
