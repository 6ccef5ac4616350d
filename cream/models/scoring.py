"""Scoring: log pi(y|x) summed over response tokens, batched and without autograd.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from cream import distributed
from cream.progress import show_progress


def pad_batch(seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad id lists into input_ids / attention_mask / response_mask (1 on response tokens)."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), T), dtype=torch.long)
    resp = torch.zeros((len(seqs), T), dtype=torch.bool)
    for i, (s, st) in enumerate(zip(seqs, starts)):
        ids[i, : len(s)] = torch.tensor(s)
        att[i, : len(s)] = 1
        resp[i, st: len(s)] = True
    return {"input_ids": ids, "attention_mask": att, "response_mask": resp}

def response_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Sum over response tokens of log p(token | prefix), one value per row: [B, T] ids and masks -> [B].

    Runs the decoder once and applies the LM head only at positions that predict a response token,
    so no float32 logits are materialized for prompt or padding positions.
    """
    decoder = model.get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
    target_mask = response_mask[:, 1:]  # [B, T-1]: position t predicts token t+1, a response token
    rows, cols = target_mask.nonzero(as_tuple=True)  # [N] each: the N predicting positions of the batch
    h = hidden[rows, cols]  # [N, H]
    logits = model.get_output_embeddings()(h).float()  # [N, V]
    targets = input_ids[rows, cols + 1]  # [N]
    lp = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)  # [N]: log p(y_t+1 | y_<=t)
    # sum each row's N_b terms: [N] -> [B]
    return torch.zeros(input_ids.shape[0], dtype=torch.float32, device=lp.device).index_add_(0, rows, lp)


@torch.inference_mode()
def score_sequences(model, seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int, *,
                    batch_size: int = 32, desc: str = "score", progress: bool = True) -> list[float]:
    """``response_logps`` for many sequences, in length-sorted batches (little padding); input order kept."""
    from cream.progress import tqdm

    if distributed.sharding():  # several ranks in a stage they all run: each scores its share, all get all
        my_seqs, my_starts = distributed.shard(seqs), distributed.shard(starts)
        with distributed.collective(False):
            mine = score_sequences(model, my_seqs, my_starts, pad_id, batch_size=batch_size,
                                   desc=desc, progress=progress and distributed.is_main())
        return distributed.gather(mine)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = [0.0] * len(seqs)
    for b in tqdm(range(0, len(order), batch_size), desc=desc, disable=not show_progress(progress), leave=False):
        idx = order[b: b + batch_size]
        batch = pad_batch([seqs[i] for i in idx], [starts[i] for i in idx], pad_id)
        lp = response_logps(model, *(batch[k].to(device) for k in ("input_ids", "attention_mask", "response_mask")))
        for i, v in zip(idx, lp.tolist()):
            out[i] = v
    model.train(was_training)
    return out
