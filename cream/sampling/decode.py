"""A decode loop with continuous batching: finished rows leave the batch and waiting prompts take their place.

Why not the library's: transformers' ``generate`` keeps every row of a batch until the longest one ends (a row that
ended still costs a full forward per step). Its per-step work around the forward is small at SmolLM2's size
(0.94-1.0x of a bare decode step, a forward of one token per row with the KV cache and an argmax, with transformers
5.25 on 2 CPU cores), so what this loop adds is that ended rows leave. The library's continuous-batching
``generate_batch`` uses a paged cache with its own attention kernels: it is built for GPUs and changes the
arithmetic, so greedy outputs would no longer match ``generate``'s token for token. ``torch.compile`` with a static
cache recompiles for every batch shape on CPU. This loop uses the model's own forward and its ``DynamicCache`` and
does nothing per step but choose the next token (experiments/perf/README.md).

The loop, for rows r (one per (prompt, completion)), sorted by prompt length:

- admit: while fewer than ``batch_size`` rows run and rows wait, the waiting rows are prefilled together
  (left padding, position ids counted over real tokens, as ``generate`` does) and their KV cache is joined
  to the running one, the shorter of the two padded on the left (masked keys: exact zeros of attention);
- step: one token per running row; a row that emits a stop id or reaches ``max_new_tokens`` leaves the
  batch (its cache rows are dropped), and cache columns that are padding for every row are cut.

Next token: greedy is the argmax of the float32 logits (as ``generate``); sampling applies temperature,
then top-p (the smallest set of tokens whose probability reaches ``top_p``, the most likely always kept),
and draws with the row's own ``torch.Generator`` seeded from (seed, row): a row's sample does not depend
on which rows share its batch, so results are reproducible whatever the batch size or admission order
(up to the last bits of float arithmetic, which batch shapes can change).

Supports decoder-only models whose cache is a ``DynamicCache`` of full-attention layers (Llama, Mistral,
Qwen2, SmolLM2, the tiny model); ``cream.sampling.hf.generate`` falls back to ``model.generate`` otherwise.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class Row:
    prompt: list[int]
    seed: int | None = None  # sampling: the row's generator seed
    tokens: list[int] = field(default_factory=list)
    finished: bool = False  # ended with a stop id (False: ran into max_new_tokens)


def supported(model) -> bool:
    """Can this loop run ``model``: a decoder-only model whose cache is made of plain full-attention layers."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # noqa: BLE001 - a config DynamicCache cannot read: leave the model to generate
        return False
    return not model.config.is_encoder_decoder and all(
        type(layer).__name__ == "DynamicLayer" for layer in getattr(cache, "layers", [None]))


def _forward(model, cache, **kw):
    """The model's forward with ``cache`` as its KV cache (transformers 5.x names it ``cache``, 4.x
    ``past_key_values``); returns (the cache, last-position float32 logits)."""
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(**kw, **{key: cache}, use_cache=True)
    return cache, out.logits[:, -1].float()  # the cache grew in place


def _prefill(model, prompts: Sequence[list[int]], pad_id: int, device):
    """Left-padded forward of new prompts: (cache, attention mask, last-position logits, next positions)."""
    from transformers import DynamicCache

    T = max(map(len, prompts))
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), T), dtype=torch.long)
    for j, p in enumerate(prompts):
        ids[j, T - len(p):] = torch.tensor(p)
        mask[j, T - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)  # generate's position ids under left padding
    cache = DynamicCache(config=model.config)
    cache, logits = _forward(model, cache, input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
    return cache, mask, logits, mask.sum(-1)


def _left_pad(t: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    if n == 0:
        return t
    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _join(cache, mask, new_cache, new_mask):
    """Stack two batches' caches and masks row-wise, the shorter padded on the left."""
    la, lb = mask.shape[1], new_mask.shape[1]
    L = max(la, lb)
    for a, b in zip(cache.layers, new_cache.layers):
        a.keys = torch.cat([_left_pad(a.keys, L - la, 2), _left_pad(b.keys, L - lb, 2)])
        a.values = torch.cat([_left_pad(a.values, L - la, 2), _left_pad(b.values, L - lb, 2)])
    return cache, torch.cat([_left_pad(mask, L - la, 1), _left_pad(new_mask, L - lb, 1)])


def _keep(cache, mask, keep: torch.Tensor):
    """Only the rows ``keep``; then drop the leading columns that are padding in every remaining row."""
    mask = mask[keep]
    first = int(mask.any(0).long().argmax())
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[keep, :, first:], layer.values[keep, :, first:]
    return cache, mask[:, first:]


def top_p_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """softmax(logits / temperature) restricted to the nucleus: tokens are removed, least likely first, while the
    probability of those removed stays <= 1 - top_p (``generate``'s TopPLogitsWarper rule; the top token stays)."""
    scores = logits / temperature
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cum = sorted_scores.softmax(-1).cumsum(-1)
        drop = cum <= 1 - top_p
        drop[..., -1] = False
        scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return scores.softmax(-1)


def _choose(logits: torch.Tensor, rows: Sequence[Row], gens, temperature: float, top_p: float) -> list[int]:
    if temperature <= 0:
        return logits.argmax(-1).tolist()
    probs = top_p_probs(logits, temperature, top_p)
    return [int(torch.multinomial(probs[j], 1, generator=gens[j])) for j in range(len(rows))]


@torch.inference_mode()
def decode(model, rows: Sequence[Row], *, max_new_tokens: int, stops: Sequence[int], pad_id: int,
           batch_size: int = 16, temperature: float = 0.0, top_p: float = 1.0, on_row_done=None) -> list[Row]:
    """Generate for every row (in place: ``row.tokens``, stop id included, and ``row.finished``); see the module.
    ``on_row_done(i)`` is called as ``rows[i]`` ends."""
    device = next(model.parameters()).device
    waiting = sorted(range(len(rows)), key=lambda i: len(rows[i].prompt), reverse=True)  # pop() takes the shortest
    stop = set(int(s) for s in stops)
    active: list[int] = []
    gens: list[torch.Generator | None] = []
    cache = mask = pos = last = None
    refill = max(1, batch_size // 4)  # admit in groups: a prefill of one prompt uses the cores poorly
    while waiting or active:
        logits = None
        if waiting and (not active or batch_size - len(active) >= min(refill, len(waiting))):
            new = [waiting.pop() for _ in range(min(batch_size - len(active), len(waiting)))]
            n_cache, n_mask, n_logits, n_pos = _prefill(model, [rows[i].prompt for i in new], pad_id, device)
            n_gens = [torch.Generator().manual_seed(rows[i].seed) if temperature > 0 else None for i in new]
            if active:  # the running rows take their step first, then the newcomers join
                mask = torch.cat([mask, mask.new_ones(len(active), 1)], 1)
                cache, logits = _forward(model, cache, input_ids=last[:, None], attention_mask=mask,
                                         position_ids=pos[:, None])
                logits = torch.cat([logits, n_logits])
                cache, mask = _join(cache, mask, n_cache, n_mask)
                pos = torch.cat([pos + 1, n_pos])
            else:
                cache, mask, logits, pos = n_cache, n_mask, n_logits, n_pos
            active, gens = active + new, gens + n_gens
        else:
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], 1)
            cache, logits = _forward(model, cache, input_ids=last[:, None], attention_mask=mask,
                                     position_ids=pos[:, None])
            pos = pos + 1
        chosen = _choose(logits, [rows[i] for i in active], gens, temperature, top_p)
        keep = []
        for j, (i, tok) in enumerate(zip(active, chosen)):
            row = rows[i]
            row.tokens.append(tok)
            row.finished = tok in stop
            if row.finished or len(row.tokens) >= max_new_tokens:
                if on_row_done is not None:
                    on_row_done(i)
            else:
                keep.append(j)
        last = torch.tensor(chosen, device=device)
        if len(keep) < len(active):
            k = torch.tensor(keep, dtype=torch.long, device=device)
            cache, mask = _keep(cache, mask, k) if keep else (None, None)
            pos, last = pos[k], last[k]
            active, gens = [active[j] for j in keep], [gens[j] for j in keep]
    return list(rows)
