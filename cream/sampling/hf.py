"""Batched generation with the HF ``generate`` API: left padding, KV cache, length-sorted batches."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from cream import distributed
from cream.models.tokens import encode_prompt, stop_ids
from cream.progress import show_progress, tqdm


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 64,
             temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 16, seed: int = 0,
             max_prompt_length: int = 512, desc: str = "generate", progress: bool = True,
             return_finished: bool = False) -> tuple:
    """``n`` completions per prompt (greedy when temperature == 0).

    Prompts are sorted by length so each batch pads little; every batch is seeded from ``seed`` and its
    index, so results do not depend on what ran before.  Generation stops at any of ``stop_ids``: the
    chat template's end of turn and every id of ``generation_config.eos_token_id``.  Returns (completions
    per prompt in input order, number of prompts truncated to ``max_prompt_length``); with
    ``return_finished`` (completions, finished, n_truncated), where ``finished[i][j]`` is False when
    completion j of prompt i ran into ``max_new_tokens`` before a stop id.
    """
    if distributed.sharding():  # several ranks in a stage they all run: each generates its share, all get all
        my_prompts = distributed.shard(prompts)
        with distributed.collective(False):
            mine, fin, n_trunc = generate(model, tokenizer, my_prompts, n=n, max_new_tokens=max_new_tokens,
                                          temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed,
                                          max_prompt_length=max_prompt_length, desc=desc,
                                          progress=progress and distributed.is_main(), return_finished=True)
        texts, finished, n_trunc = distributed.gather(mine), distributed.gather(fin), sum(distributed.gather([n_trunc]))
        return (texts, finished, n_trunc) if return_finished else (texts, n_trunc)
    stops = stop_ids(tokenizer, model)
    encoded = [encode_prompt(tokenizer, p, max_prompt_length) for p in prompts]
    n_truncated = sum(t for _, t in encoded)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i][0]))
    out: list[list[str]] = [[] for _ in prompts]
    finished: list[list[bool]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    sample = temperature > 0
    pad = tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    for b, idx in enumerate(tqdm(batches, desc=desc, disable=not show_progress(progress), leave=False)):
        seqs = [encoded[i][0] for i in idx]
        T = max(map(len, seqs))
        ids = torch.full((len(seqs), T), pad, dtype=torch.long)
        att = torch.zeros_like(ids)
        for j, s in enumerate(seqs):  # left padding
            ids[j, T - len(s):] = torch.tensor(s)
            att[j, T - len(s):] = 1
        torch.manual_seed(seed * 100_003 + b)
        gen = model.generate(
            input_ids=ids.to(device), attention_mask=att.to(device), max_new_tokens=max_new_tokens,
            do_sample=sample, temperature=temperature if sample else None, top_p=top_p if sample else None,
            top_k=0 if sample else None, num_return_sequences=n if sample else 1, pad_token_id=pad,
            eos_token_id=stops, use_cache=True,
        )
        new = gen[:, T:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        ended = torch.isin(new, torch.tensor(stops, device=new.device)).any(dim=1).tolist()
        if not sample:  # greedy: the n completions are one and the same
            texts = [t for t in texts for _ in range(n)]
            ended = [e for e in ended for _ in range(n)]
        for j, i in enumerate(idx):
            out[i] = texts[j * n:(j + 1) * n]
            finished[i] = ended[j * n:(j + 1) * n]
    model.train(was_training)
    return (out, finished, n_truncated) if return_finished else (out, n_truncated)


class HFSampler:
    """``sampler=hf``: :func:`generate` on M_t, which the sample stage first puts on the accelerator."""

    moves_model = True  # the stage puts M_t on the device; generate runs it there

    def __call__(self, model, tokenizer, prompts: Sequence[str], **kwargs) -> tuple:
        return generate(model, tokenizer, prompts, **kwargs)
