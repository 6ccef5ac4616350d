"""Scoring: log pi(y|x) summed over response tokens, batched and without autograd.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import torch
from torch.utils.checkpoint import checkpoint

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

# The LM head's float32 logits are [N, V] for N scored positions: with SmolLM2's 49k vocabulary a DPO batch of 8 pairs
# x 256 response tokens is 0.8 GB each for the logits, their log-softmax and their gradients. Above this many
# elements the head runs on chunks of positions (under autograd each chunk is recomputed in the backward pass), so
# only one chunk's logits exist at a time. Each position's logp is the same function of its hidden state either way.
LOGIT_CHUNK_ELEMENTS = 2 ** 26  # 256 MB of float32 logits per chunk


def response_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   response_mask: torch.Tensor) -> torch.Tensor:
    """Sum over response tokens of log p(token | prefix), one value per row: [B, T] ids and masks -> [B].

    Runs the decoder once and applies the LM head only at positions that predict a response token,
    so no float32 logits are materialized for prompt or padding positions (and for many positions, only one
    chunk of them at a time: ``LOGIT_CHUNK_ELEMENTS``).
    """
    decoder = model.get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
    target_mask = response_mask[:, 1:]  # [B, T-1]: position t predicts token t+1, a response token
    rows, cols = target_mask.nonzero(as_tuple=True)  # [N] each: the N predicting positions of the batch
    h = hidden[rows, cols]  # [N, H]
    targets = input_ids[rows, cols + 1]  # [N]
    lp = target_logps(model.get_output_embeddings(), h, targets)  # [N]: log p(y_t+1 | y_<=t)
    # sum each row's N_b terms: [N] -> [B]
    return torch.zeros(input_ids.shape[0], dtype=torch.float32, device=lp.device).index_add_(0, rows, lp)


def logit_chunk(vocab_size: int, max_elements: int | None = None) -> int:
    """The positions whose logits are computed at once: ``max_elements`` (default ``LOGIT_CHUNK_ELEMENTS``) / V."""
    return max(1, (max_elements or LOGIT_CHUNK_ELEMENTS) // vocab_size)


def _head_logps(head, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = head(h).float()  # [n, V]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)


def target_logps(head, h: torch.Tensor, targets: torch.Tensor, max_elements: int | None = None) -> torch.Tensor:
    """log softmax(head(h))[target] per position, [N, H] -> [N], at most ``max_elements`` logits at a time
    (default ``LOGIT_CHUNK_ELEMENTS``)."""
    n = h.shape[0]
    chunk = logit_chunk(head.weight.shape[0], max_elements)
    if n <= chunk:
        return _head_logps(head, h, targets)
    recompute = torch.is_grad_enabled() and (h.requires_grad or head.weight.requires_grad)
    parts = []
    for i in range(0, n, chunk):
        hi, ti = h[i: i + chunk], targets[i: i + chunk]
        parts.append(checkpoint(_head_logps, head, hi, ti, use_reentrant=False) if recompute
                     else _head_logps(head, hi, ti))
    return torch.cat(parts)


@torch.inference_mode()
def score_sequences(model, seqs: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int, *,
                    batch_size: int = 32, desc: str = "score", progress: bool = True) -> list[float]:
    """``response_logps`` for many sequences, in length-sorted batches (little padding); input order kept.
    Identical sequences (same tokens, same response start) are scored once and share that float."""
    from cream.progress import tqdm

    # A prompt's duplicated responses have one true log-prob. Scored apart, in batches padded to different
    # lengths, they would differ in the last bits, and a reward tie (pairs, Kendall's tau-b) would become an order.
    first: dict[tuple, int] = {}
    which = [first.setdefault((start, *seq), len(first)) for seq, start in zip(seqs, starts, strict=True)]
    if len(first) < len(seqs):
        unique = list(first)  # first occurrences, in input order: without duplicates the batches are as before
        scores = score_sequences(model, [u[1:] for u in unique], [u[0] for u in unique], pad_id,
                                 batch_size=batch_size, desc=desc, progress=progress)
        return [scores[j] for j in which]
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


def _cache_arg(module) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def shared_groups(seqs: Sequence[Sequence[int]], starts: Sequence[int], sizes: Sequence[int]) -> list[bool]:
    """Per group of consecutive sequences (``sizes``: one group per question): do all its sequences begin with
    the same context ids ``seq[:start]``?  (A tokenizer may merge the context's last token with an option's
    first, or truncation may cut differently: such a group is scored option by option.)"""
    out, j = [], 0
    for n in sizes:
        group = range(j, j + n)
        first = list(seqs[j][: starts[j]])
        out.append(all(starts[i] == starts[j] and list(seqs[i][: starts[i]]) == first for i in group))
        j += n
    return out


def _shared_batch(model, contexts: list[list[int]], options: list[list[list[int]]], pad_id: int) -> list[list[float]]:
    """log p(option | context) for a batch of questions: each context runs once (left padded), its KV cache is
    repeated once per option, and the options (right padded) run on top of it.

    The first option token is predicted by the context's last position; token i > 0 by option position i - 1.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    key = _cache_arg(decoder)
    B, Lc = len(contexts), max(map(len, contexts))
    ids = torch.full((B, Lc), pad_id, dtype=torch.long)
    mask = torch.zeros((B, Lc), dtype=torch.long)
    for b, c in enumerate(contexts):
        ids[b, Lc - len(c):], mask[b, Lc - len(c):] = torch.tensor(c), 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp_(min=0)
    cache = DynamicCache(config=model.config)
    last = decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                   **{key: cache}).last_hidden_state[:, -1]
    first_lp = torch.log_softmax(head(last).float(), dim=-1)  # (B, V): the first token of every option
    owner = [b for b, opts in enumerate(options) for _ in opts]  # question of each option row
    flat = [o for opts in options for o in opts]
    rows = torch.tensor(owner, device=device)
    for layer in cache.layers:  # one copy of the context's cache per option
        layer.keys, layer.values = layer.keys[rows], layer.values[rows]
    Lo = max(map(len, flat))
    oid = torch.full((len(flat), Lo), pad_id, dtype=torch.long)
    omask = torch.zeros((len(flat), Lo), dtype=torch.long)
    for r, o in enumerate(flat):
        oid[r, : len(o)], omask[r, : len(o)] = torch.tensor(o), 1
    oid, omask = oid.to(device), omask.to(device)
    opos = mask.sum(-1)[rows][:, None] + torch.arange(Lo, device=device)[None]
    hidden = decoder(input_ids=oid, attention_mask=torch.cat([mask[rows], omask], 1), position_ids=opos, use_cache=True,
                     **{key: cache}).last_hidden_state
    lp = first_lp[rows].gather(-1, oid[:, :1]).squeeze(-1)  # (R,)
    r_idx, c_idx = omask[:, 1:].nonzero(as_tuple=True)  # option position c predicts option token c + 1
    if len(r_idx):
        rest = (torch.log_softmax(head(hidden[r_idx, c_idx]).float(), dim=-1)
                .gather(-1, oid[r_idx, c_idx + 1][:, None]).squeeze(-1))
        lp = lp.index_add(0, r_idx, rest)
    out, vals = [], lp.tolist()
    for opts in options:
        out.append(vals[: len(opts)])
        vals = vals[len(opts):]
    return out


@torch.inference_mode()
def score_shared_context(model, seqs: Sequence[Sequence[int]], starts: Sequence[int], sizes: Sequence[int],
                         pad_id: int, *, batch_size: int = 64, desc: str = "score",
                         progress: bool = True) -> tuple[list[float], dict]:
    """``score_sequences`` for groups of sequences that share their context (``sizes``: consecutive group
    lengths, e.g. a question's options): each context is computed once and its options are scored from its
    KV cache (``batch_size``: option rows per forward).  Groups whose sequences do not share ``seq[:start]``
    (``shared_groups``) are scored sequence by sequence.  Under several ranks each scores its share of the groups
    (whole questions).  Returns (the log-likelihoods, input order; {"tokens_per_sequence": ..., "tokens_shared":
    ...}: tokens run through the model, summed, by each way, over every rank)."""
    from tqdm.auto import tqdm

    if sum(sizes) != len(seqs):
        raise ValueError(f"group sizes sum to {sum(sizes)} for {len(seqs)} sequences")
    offsets = [sum(sizes[:g]) for g in range(len(sizes))]
    if distributed.sharding():  # several ranks in a stage they all run: each scores its share of the groups
        mine = distributed.shard(range(len(sizes)))
        rows = [i for g in mine for i in range(offsets[g], offsets[g] + sizes[g])]
        with distributed.collective(False):
            lps, tokens = score_shared_context(model, [seqs[i] for i in rows], [starts[i] for i in rows],
                                               [sizes[g] for g in mine], pad_id, batch_size=batch_size, desc=desc,
                                               progress=progress and distributed.is_main())
        cuts = [0, *accumulate(sizes[g] for g in mine)]
        groups = distributed.gather([lps[cuts[k]: cuts[k + 1]] for k in range(len(mine))])
        counts = distributed.gather([tokens])
        return [v for group in groups for v in group], {k: sum(c[k] for c in counts) for k in tokens}
    ok = shared_groups(seqs, starts, sizes)
    out: list[float] = [0.0] * len(seqs)
    alone = [i for g, o in enumerate(offsets) if not ok[g] for i in range(o, o + sizes[g])]
    if alone:
        for i, v in zip(alone, score_sequences(model, [seqs[i] for i in alone], [starts[i] for i in alone], pad_id,
                                               batch_size=batch_size, desc=desc, progress=progress)):
            out[i] = v
    shared = sorted((g for g in range(len(sizes)) if ok[g]), key=lambda g: starts[offsets[g]])
    was_training = model.training
    model.eval()
    batches, cur = [], []
    for g in shared:
        if cur and sum(sizes[h] for h in cur) + sizes[g] > batch_size:
            batches.append(cur)
            cur = []
        cur.append(g)
    batches += [cur] if cur else []
    for batch in tqdm(batches, desc=desc, disable=not show_progress(progress), leave=False):
        ctxs = [list(seqs[offsets[g]][: starts[offsets[g]]]) for g in batch]
        opts = [[list(seqs[i][starts[i]:]) for i in range(offsets[g], offsets[g] + sizes[g])] for g in batch]
        for g, vals in zip(batch, _shared_batch(model, ctxs, opts, pad_id)):
            out[offsets[g]: offsets[g] + sizes[g]] = vals
    model.train(was_training)
    per_seq = sum(len(s) for s in seqs)
    used = sum(len(seqs[i]) for i in alone) + sum(starts[offsets[g]] + sum(len(seqs[i]) - starts[i] for i in
                                                   range(offsets[g], offsets[g] + sizes[g])) for g in shared)
    return out, {"tokens_per_sequence": per_seq, "tokens_shared": used}
