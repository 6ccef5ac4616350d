"""The self-reward head's rewarder (``rewarder=self_reward_head``; the head: ``cream/training/head_module.py``).

    reward(x, y)      = sigmoid(head_t(sum of M_t's input embeddings of y's tokens))   P(y is a gold response)
    prev_reward(x, y) = the same with M_{t-1}'s embeddings and head; M0 has no head (it is trained during
                        SFT), so for t = 1 it is M0's length-normalized log-likelihood, as in ``implicit.py``.

The response's tokens are those the DPO step trains on (``encode_pair``: the response and its EOS).
"""
from __future__ import annotations

import gc

import torch

from cream.errors import MissingHeadError
from cream.models.loading import load_model, load_tokenizer, on_device
from cream.rewarders import per_prompt
from cream.rewarders.implicit import encode_samples, sequence_logps
from cream.training.head_module import has_head, load_head, summed_embeddings


@torch.inference_mode()
def head_rewards(model, head, seqs, starts, pad_id: int, batch_size: int = 32) -> list[float]:
    """sigmoid(head(summed response-token embeddings)) for every encoded (prompt, response)."""
    from cream.models.scoring import pad_batch

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


class SelfRewardHeadRewarder:
    def __init__(self, batch_size: int = 32, head: dict | None = None):
        self.batch_size = int(batch_size)  # ``head`` (its SFT training settings) is read by the SFT stage

    def head_scores(self, ctx, k: int, seqs, starts) -> list[float]:
        cfg, path = ctx.cfg, ctx.model_path(k)
        if not has_head(path):
            raise MissingHeadError(
                f"{path}: M{k} has no self-reward head (self_reward_head.safetensors). The head is trained during "
                "SFT when rewarder=self_reward_head: rerun in a new run dir (or with pipeline.on_config_change=redo).")
        model = load_model(path, cfg.model.dtype, cfg.model.trust_remote_code)
        model = on_device(model, cfg)
        out = head_rewards(model, load_head(path), seqs, starts, load_tokenizer(path).pad_token_id, self.batch_size)
        del model
        gc.collect()
        return out

    def score(self, ctx, t: int, samples: list[dict]) -> list[dict]:
        tok = load_tokenizer(ctx.model_path(t), ctx.cfg.model.trust_remote_code)
        seqs, starts, _ = encode_samples(ctx, tok, samples)
        n_tokens = [len(s) - st for s, st in zip(seqs, starts)]
        reward = self.head_scores(ctx, t, seqs, starts)
        if t == 1:  # M0 has no head: length-normalized log-likelihood
            prev = [b / n for b, n in zip(sequence_logps(ctx, 0, seqs, starts, self.batch_size), n_tokens)]
        else:
            prev = self.head_scores(ctx, t - 1, seqs, starts)
        return per_prompt(samples, reward=reward, prev_reward=prev, n_tokens=n_tokens)
