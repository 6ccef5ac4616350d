"""A self-reward head on the policy (``rewarder=self_reward_head``): P(a response is a gold reference).

Input: the sum of the policy's input token embeddings over a response, gathered into one vector (the
"last position" of the sequence): the gold tokens for a reference response, the argmax tokens of the
model's own teacher-forced predictions for a generated one.  The head (LayerNorm -> Linear -> GELU ->
Linear) maps it to a logit.

It is trained during SFT, with BCE (gold = 1, generated = 0) added to the causal LM loss:
``L = L_lm + rewarder.head.weight * L_bce``; with ``rewarder.head.detach: true`` the BCE gradient stops at
the embeddings (only the head learns from it).  The SFT stage saves it next to the model as
``self_reward_head.safetensors`` (+ ``self_reward_head.json``); the DPO stage copies it along, so every
M_k (k >= 1) has one.  At reward time, sigmoid(head(sum of the response's token embeddings)) is the reward.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cream.training.optim import adamw_cosine
from cream.training.sft_module import SFTModule, sft_loss

HEAD_FILE = "self_reward_head.safetensors"
HEAD_CONFIG = "self_reward_head.json"


class SelfRewardHead(nn.Module):
    def __init__(self, hidden_size: int, width: int | None = None):
        super().__init__()
        width = int(width or hidden_size)
        self.hidden_size, self.width = int(hidden_size), width
        self.net = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, width), nn.GELU(),
                                 nn.Linear(width, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits [B] of "this is a gold response" for summed-embedding features [B, H]."""
        return self.net(features.float()).squeeze(-1)


def summed_embeddings(embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_i mask_i * E[ids_i] per row: [B, T] ids and mask -> [B, H]."""
    return (embedding(ids).float() * mask.unsqueeze(-1).float()).sum(dim=1)


def head_features(model, logits: torch.Tensor, labels: torch.Tensor,
                  detach: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(gold features, generated features) of a teacher-forced SFT batch.

    Position t's logits predict token t+1: over the target positions (labels != -100), the gold sequence
    is the labels and the generated one the argmax predictions at the same positions."""
    emb = model.get_input_embeddings()
    targets = labels[:, 1:]
    mask = targets != -100
    gold_ids = targets.masked_fill(~mask, 0)
    gen_ids = logits[:, :-1].argmax(dim=-1).masked_fill(~mask, 0)
    gold, gen = summed_embeddings(emb, gold_ids, mask), summed_embeddings(emb, gen_ids, mask)
    return (gold.detach(), gen.detach()) if detach else (gold, gen)


def head_loss(head: SelfRewardHead, gold: torch.Tensor, gen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE with gold = 1 and generated = 0, accuracy of the 0.5 threshold)."""
    logits = head(torch.cat([gold, gen]))
    y = torch.cat([torch.ones(len(gold)), torch.zeros(len(gen))]).to(logits.device)
    return F.binary_cross_entropy_with_logits(logits, y), ((logits > 0).float() == y).float().mean()


class SFTWithHeadModule(SFTModule):
    """SFT (response-token cross-entropy) + ``weight`` x the self-reward head's BCE."""

    def __init__(self, model, head: SelfRewardHead, weight: float = 1.0, detach: bool = True, **kwargs):
        super().__init__(model, **kwargs)
        self.head, self.weight, self.detach = head, float(weight), bool(detach)

    def training_step(self, batch, batch_idx):
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        lm = sft_loss(logits, batch["labels"])
        gold, gen = head_features(self.model, logits, batch["labels"], self.detach)
        bce, acc = head_loss(self.head, gold, gen)
        loss = lm + self.weight * bce
        n = batch["labels"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/lm_loss", lm, batch_size=n)
        self.log("train/head_loss", bce, prog_bar=True, batch_size=n)
        self.log("train/head_accuracy", acc, batch_size=n)
        self.log("train/response_tokens", (batch["labels"] != -100).sum().float(), batch_size=n)
        return loss

    def configure_optimizers(self):
        return adamw_cosine([self.model, self.head], self.lr, self.weight_decay, self.warmup_ratio, self.total_steps)


# --------------------------------------------------------------------------- save / load / stage hooks

def save_head(head: SelfRewardHead, model_dir: str | Path) -> None:
    from safetensors.torch import save_file

    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(d / HEAD_FILE))
    (d / HEAD_CONFIG).write_text(json.dumps({"hidden_size": head.hidden_size, "width": head.width,
                                             "input": "sum of the input embeddings of the response tokens"}) + "\n")


def has_head(model_dir: str | Path) -> bool:
    return (Path(model_dir) / HEAD_FILE).exists() and (Path(model_dir) / HEAD_CONFIG).exists()


def load_head(model_dir: str | Path) -> SelfRewardHead:
    from safetensors.torch import load_file

    d = Path(model_dir)
    meta = json.loads((d / HEAD_CONFIG).read_text())
    head = SelfRewardHead(meta["hidden_size"], meta.get("width"))
    head.load_state_dict(load_file(str(d / HEAD_FILE)))
    return head.eval()


def copy_head(src_model_dir: str | Path, dst_model_dir: str | Path) -> bool:
    """Carry M_t's head to M_{t+1}'s folder (the DPO stage); False when M_t has none."""
    if not has_head(src_model_dir):
        return False
    Path(dst_model_dir).mkdir(parents=True, exist_ok=True)
    for name in (HEAD_FILE, HEAD_CONFIG):
        shutil.copyfile(Path(src_model_dir) / name, Path(dst_model_dir) / name)
    return True
