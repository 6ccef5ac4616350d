"""Batched generation: this project's decode loop (``cream.sampling.decode``: KV cache, continuous batching)
or the HF ``generate`` API (left padding, KV cache, length-sorted batches).

``engine`` (``inference.decode``): ``loop`` runs the decode loop for greedy and sampled generation; ``hf``
runs ``model.generate`` for both; ``auto`` (the default) runs the loop for greedy decoding, where both give
the same tokens, and ``generate`` for sampling, whose random stream (one ``torch.manual_seed`` per batch,
one draw per row of the batch and step) is what earlier runs used.  A model the loop does not support
(``cream.sampling.decode.supported``) goes to ``generate`` whatever the engine, and the log says so once.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence

import torch

from cream import distributed
from cream.artifacts import Journal
from cream.models.tokens import encode_prompt, stop_ids
from cream.progress import show_progress, tqdm
from cream.sampling import decode as loop

log = logging.getLogger(__name__)
ENGINES = ("auto", "loop", "hf")
_SAID: set[str] = set()


def use_loop(model, engine: str, sample: bool) -> bool:
    """Does ``engine`` (module docstring) run this model and mode with the decode loop?"""
    if engine not in ENGINES:
        raise ValueError(f"inference.decode={engine!r}: expected one of {', '.join(ENGINES)}")
    wanted = engine == "loop" or (engine == "auto" and not sample)
    if wanted and not loop.supported(model):
        name = type(model).__name__
        if name not in _SAID:
            _SAID.add(name)
            log.warning("%s: its cache is not a plain DynamicCache; generating with model.generate", name)
        return False
    return wanted


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[str], *, n: int = 1, max_new_tokens: int = 64,
             temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 16, seed: int = 0,
             max_prompt_length: int = 512, desc: str = "generate", progress: bool = True,
             return_finished: bool = False, engine: str = "auto", journal: Journal | None = None) -> tuple:
    """``n`` completions per prompt (greedy when temperature == 0).

    Generation stops at any of ``stop_ids``: the chat template's end of turn and every id of
    ``generation_config.eos_token_id``.  ``batch_size`` is the number of prompts decoded together (rows:
    prompts x n when sampling).  Seeds: the decode loop seeds each (prompt, completion) row from ``seed``,
    the prompt's index and the completion's; ``generate`` seeds each length-sorted batch from ``seed`` and
    its index.  Either way results do not depend on what ran before.  Returns (completions per prompt in
    input order, number of prompts truncated to ``max_prompt_length``); with ``return_finished``
    (completions, finished, n_truncated), where ``finished[i][j]`` is False when completion j of prompt i
    ran into ``max_new_tokens`` before a stop id.

    ``journal``: where finished pieces are saved as they end (the decode loop: each row; ``generate``: each batch)
    and read back from when a killed stage runs again (only for the same prompt tokens, seed and settings, which
    each piece's fingerprint records); under several ranks, this rank's own.  A batch of
    ``generate`` is seeded by its index, so the batches a rerun computes get the tokens of an uninterrupted run;
    the loop's rows are seeded by row, and the rows left to decode share batches differently (the last bits of
    float arithmetic may differ, as for any change of batch size).
    """
    if distributed.sharding():  # several ranks in a stage they all run: each generates its share, all get all
        my_prompts = distributed.shard(prompts)
        with distributed.collective(False):
            mine, fin, n_trunc = generate(model, tokenizer, my_prompts, n=n, max_new_tokens=max_new_tokens,
                                          temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed,
                                          max_prompt_length=max_prompt_length, desc=desc,
                                          progress=progress and distributed.is_main(), return_finished=True,
                                          engine=engine, journal=journal)
        texts, finished, n_trunc = distributed.gather(mine), distributed.gather(fin), sum(distributed.gather([n_trunc]))
        return (texts, finished, n_trunc) if return_finished else (texts, n_trunc)
    encoded = [encode_prompt(tokenizer, p, max_prompt_length) for p in prompts]
    n_truncated = sum(t for _, t in encoded)
    sample = temperature > 0
    was_training = model.training
    model.eval()
    run = _with_loop if use_loop(model, engine, sample) else _with_generate
    out, finished = run(model, tokenizer, [e[0] for e in encoded], n=n, max_new_tokens=max_new_tokens,
                        temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed,
                        bar=dict(desc=desc, disable=not show_progress(progress), leave=False),
                        journal=journal or Journal(None))
    model.train(was_training)
    return (out, finished, n_truncated) if return_finished else (out, n_truncated)


def row_seed(seed: int, prompt: int, completion: int) -> int:
    """The seed of one (prompt, completion) row of the decode loop."""
    return (seed * 1_000_003 + prompt) * 1_009 + completion


def _with_loop(model, tokenizer, encoded, *, n, max_new_tokens, temperature, top_p, batch_size, seed, bar,
               journal):
    sample = temperature > 0
    per = n if sample else 1  # greedy: the n completions are one and the same
    rows = [loop.Row(p, row_seed(seed, i, j)) for i, p in enumerate(encoded) for j in range(per)]
    keys = [_key(r.prompt, r.seed, max_new_tokens, temperature, top_p) for r in rows]
    for saved in journal.rows:  # rows a killed run of this stage finished (the same prompt, seed and settings)
        k = saved["row"]
        if k < len(rows) and saved.get("key") == keys[k]:
            rows[k].tokens, rows[k].finished = saved["tokens"], saved["finished"]
    todo = [k for k, r in enumerate(rows) if not r.tokens]
    if journal.rows:
        log.info("%s: %d of %d rows read from %s (saved before the stage was stopped)", bar["desc"],
                 len(rows) - len(todo), len(rows), journal.path)

    def done(i: int) -> None:
        row = rows[todo[i]]
        journal.add({"row": todo[i], "key": keys[todo[i]], "tokens": row.tokens, "finished": row.finished})
        pbar.update(1)

    with tqdm(total=len(rows), initial=len(rows) - len(todo), **bar) as pbar:
        loop.decode(model, [rows[k] for k in todo], max_new_tokens=max_new_tokens, stops=stop_ids(tokenizer, model),
                    pad_id=tokenizer.pad_token_id, batch_size=batch_size * per, temperature=temperature,
                    top_p=top_p, on_row_done=done)
    texts = tokenizer.batch_decode([r.tokens for r in rows], skip_special_tokens=True)
    out = [[texts[i * per + (j if sample else 0)] for j in range(n)] for i in range(len(encoded))]
    finished = [[rows[i * per + (j if sample else 0)].finished for j in range(n)] for i in range(len(encoded))]
    return out, finished


def _with_generate(model, tokenizer, encoded, *, n, max_new_tokens, temperature, top_p, batch_size, seed, bar,
                   journal):
    stops = stop_ids(tokenizer, model)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[list[str]] = [[] for _ in encoded]
    finished: list[list[bool]] = [[] for _ in encoded]
    device = next(model.parameters()).device
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    keys = [_key([encoded[i] for i in idx], seed * 100_003 + b, n, max_new_tokens, temperature, top_p)
            for b, idx in enumerate(batches)]
    # batches a killed run of this stage finished (the same prompts, seed and settings)
    saved = {r["batch"]: r for r in journal.rows if r["batch"] < len(keys) and r.get("key") == keys[r["batch"]]}
    if journal.rows:
        log.info("%s: %d of %d batches read from %s (saved before the stage was stopped)", bar["desc"],
                 len(saved), len(batches), journal.path)
    for b, idx in enumerate(tqdm(batches, **bar)):
        if b in saved:
            texts, ended = saved[b]["texts"], saved[b]["finished"]
        else:
            texts, ended = _generate_batch(model, tokenizer, [encoded[i] for i in idx], n=n,
                                           max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                           seed=seed * 100_003 + b, stops=stops, device=device)
            journal.add({"batch": b, "key": keys[b], "prompts": idx, "texts": texts, "finished": ended})
        for j, i in enumerate(idx):
            out[i] = texts[j * n:(j + 1) * n]
            finished[i] = ended[j * n:(j + 1) * n]
    return out, finished


def _key(*what) -> str:
    """A saved piece's fingerprint: its prompts' token ids, seed and settings (a rerun uses a piece only when they
    are the same, e.g. not when the prompts were split across another number of ranks)."""
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


def _generate_batch(model, tokenizer, seqs, *, n, max_new_tokens, temperature, top_p, seed, stops, device):
    """``model.generate`` on one batch of encoded prompts, its draws seeded by ``seed``: the completions' texts
    and whether each ended with a stop id, n per prompt, in prompt order."""
    sample = temperature > 0
    pad = tokenizer.pad_token_id
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    att = torch.zeros_like(ids)
    for j, s in enumerate(seqs):  # left padding
        ids[j, T - len(s):] = torch.tensor(s)
        att[j, T - len(s):] = 1
    torch.manual_seed(seed)
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
    return texts, ended


class HFSampler:
    """``sampler=hf``: :func:`generate` on M_t, which the sample stage first puts on the accelerator."""

    moves_model = True  # the stage puts M_t on the device; generate runs it there
    resumes = True  # takes a ``journal``: a killed sample stage keeps its finished batches or rows

    def __call__(self, model, tokenizer, prompts: Sequence[str], **kwargs) -> tuple:
        return generate(model, tokenizer, prompts, **kwargs)
