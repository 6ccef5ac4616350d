"""The self-reward head's rewarder (``rewarder=self_reward_head``; the head: ``cream/training/head_module.py``).

    reward(x, y)      = sigmoid(head_t(sum of M_t's input embeddings of y's tokens))   P(y is a gold response)
    prev_reward(x, y) = the same with M_{t-1}'s embeddings and head; M0 has no head (it is trained during
                        SFT), so for t = 1 it is M0's length-normalized log-likelihood, as in ``implicit.py``.

The response's tokens are those the DPO step trains on (``encode_pair``: the response and its EOS).
"""
from __future__ import annotations

from pathlib import Path

import torch

from cream.errors import MissingHeadError
from cream.models.scoring import pad_batch
from cream.rewarders.base import Rewarder, RewardInputs, Scores
from cream.training.head_module import (
    SelfRewardHead,
    SFTWithHeadModule,
    copy_head,
    has_head,
    load_head,
    save_head,
    summed_embeddings,
)


@torch.inference_mode()
def head_rewards(model, head, seqs, starts, pad_id: int, batch_size: int = 32) -> list[float]:
    """sigmoid(head(summed response-token embeddings)) for every encoded (prompt, response)."""
    emb = model.get_input_embeddings()
    device = emb.weight.device
    head = head.to(device=device, dtype=torch.float32)
    out = []
    for b in range(0, len(seqs), batch_size):
        batch = pad_batch(seqs[b: b + batch_size], starts[b: b + batch_size], pad_id)
        with torch.no_grad():  # the head is float32; the policy may be bf16
            feats = summed_embeddings(emb, batch["input_ids"].to(device), batch["response_mask"].to(device))
            out += torch.sigmoid(head(feats.float())).tolist()
    return out


class SelfRewardHeadRewarder(Rewarder):
    scores_base = False        # M0 has no head (it is trained during SFT): the stage's M0 fallback at t = 1
    trains_with_policy = True  # its ``head`` settings are part of the SFT stage's config

    def __init__(self, batch_size: int = 32, head: dict | None = None):
        super().__init__(batch_size)
        self.head = dict(head or {})  # weight, detach, width (conf/rewarder/self_reward_head.yaml)

    def score(self, inputs: RewardInputs, k: int) -> Scores:
        path = inputs.path(k)
        if not has_head(path):
            raise MissingHeadError(
                f"{path}: M{k} has no self-reward head (self_reward_head.safetensors). The head is trained during "
                "SFT when rewarder=self_reward_head: rerun in a new run dir (or with pipeline.on_config_change=redo).")
        model = inputs.load(k)
        out = head_rewards(model, load_head(path), inputs.seqs, inputs.starts, inputs.pad_id, self.batch_size)
        del model
        inputs.free()
        return Scores(out)

    # ---- training hooks: the head trains with the policy in SFT, is saved with M1 and carried to every M_{t+1}
    def sft_module(self, model, seed: int, **optim) -> SFTWithHeadModule:
        torch.manual_seed(seed)
        head = SelfRewardHead(model.config.hidden_size, self.head["width"])
        return SFTWithHeadModule(model, head, weight=float(self.head["weight"]),
                                 detach=bool(self.head["detach"]), **optim)

    def after_sft(self, module, model_dir: Path) -> None:
        save_head(module.head, model_dir)

    def after_dpo(self, src_model_dir, dst_model_dir: Path) -> None:
        copy_head(src_model_dir, dst_model_dir)
