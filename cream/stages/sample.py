"""Sample: N responses per prompt of this iteration's slice of the unlabeled pool, from M_t.

A killed stage resumes where it stopped (``sampler=hf``): each finished batch (``generate``) or row (the decode
loop) is saved in the stage's ``.parts/`` as it ends, and the rerun of the same stage (same config and inputs, as
the pipeline checks) reads them back instead of sampling them again (``cream.sampling.hf.generate``).  ``.parts/``
is removed once the stage's outputs are written.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import OmegaConf

from cream import artifacts
from cream.data.pool import prompt_slice
from cream.data.prompts import last_user_text, pool_messages, render_messages
from cream.distributed import is_main
from cream.models.loading import load_model, load_tokenizer, on_device
from cream.models.precision import for_inference
from cream.records import SampleRow, write_rows
from cream.sampling import make_sampler
from cream.stages.context import DATA, INFERENCE, MODEL, PARTS, Context, journal

EVERY_RANK = True  # each rank samples its share of the prompts


def stale_keys(ctx: Context, **_) -> list[str]:
    return [*MODEL, *DATA, "data.n_prompts", "data.prompts", "sampling", "sampler", *INFERENCE["sample"]]


def run(ctx: Context, out: Path, t: int) -> dict:
    cfg, s = ctx.cfg, ctx.cfg.sampling
    # instantiate(cfg.sampler): HFSampler or VLLMSampler (vllm imported only if chosen)
    generate_fn = make_sampler(cfg.sampler)
    items = prompt_slice(cfg, t)  # benchmark questions and (OASST, own) prompts
    tok = load_tokenizer(ctx.model_path(t), cfg.model.trust_remote_code)
    model = load_model(ctx.model_path(t), cfg.model.dtype, cfg.model.trust_remote_code)
    if generate_fn.moves_model:  # vLLM loads the weights itself, from M_t's folder
        model = for_inference(on_device(model, cfg), OmegaConf.select(cfg, "inference.sampling_dtype"),
                              "inference.sampling_dtype")
    # HF: the decode loop or generate
    engine = {"engine": OmegaConf.select(cfg, "inference.decode", default="auto")} if generate_fn.moves_model else {}
    if getattr(generate_fn, "resumes", False):  # CREAM_FAULT=<stage>:step=<n>:... fires once n pieces are saved
        engine["journal"] = journal(out)
    messages = [pool_messages(x, s.instruction) for x in items]  # sampling.instruction: cot | none
    prompts = [render_messages(tok, m) for m in messages]
    responses, finished, n_trunc = generate_fn(
        model, tok, prompts, n=s.n, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
        top_p=s.top_p, batch_size=s.batch_size, seed=cfg.seed * 1000 + t,
        max_prompt_length=cfg.model.max_prompt_length, desc=f"sample M{t}", return_finished=True,
        **engine)
    n_cut = sum(not f for row in finished for f in row)
    summary = {"n_prompts": len(items), "n_responses": sum(map(len, responses)), "n_prompts_truncated": n_trunc,
               "n_responses_cut": n_cut}  # cut: reached sampling.max_new_tokens before the end of turn
    if not is_main():  # several ranks: each sampled a shard, all hold every response; rank 0 writes
        return summary
    write_rows(ctx.paths.samples(t), (
        SampleRow(prompt_id=x.id, benchmark=getattr(x, "benchmark", None) or x.source, instruction=last_user_text(m),
                  prompt=p, responses=r, finished=f)
        for x, m, p, r, f in zip(items, messages, prompts, responses, finished)))
    # gold answers are kept apart: only the reward-quality metrics read them, never a rewarder; prompts
    # without one (OASST, own) have none, and a pool without any writes no labels.jsonl
    labelled = [x for x in items if x.answer is not None]
    if labelled:
        artifacts.write_jsonl(ctx.paths.labels(t), ({"prompt_id": x.id, "answer": x.answer} for x in labelled))
    shutil.rmtree(out / PARTS, ignore_errors=True)
    return summary

