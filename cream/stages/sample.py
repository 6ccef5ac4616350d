"""Sample: N responses per prompt of this iteration's slice of the unlabeled pool, from M_t."""
from __future__ import annotations

from pathlib import Path

from cream import artifacts
from cream.distributed import is_main
from cream.data.pool import prompt_slice
from cream.data.prompts import format_prompt, render
from cream.samplers import get_sampler
from cream.models import load_model, load_tokenizer, on_device


def run(ctx, out: Path, t: int) -> dict:
    cfg, s = ctx.cfg, ctx.cfg.sampling
    generate_fn = get_sampler(cfg.sampler)  # sampler=hf: cream.generation.generate; vllm imported only if chosen
    examples = prompt_slice(cfg, t)
    tok = load_tokenizer(ctx.model_path(t), cfg.model.trust_remote_code)
    model = load_model(ctx.model_path(t), cfg.model.dtype, cfg.model.trust_remote_code)
    if cfg.sampler.name == "hf":  # vLLM loads the weights itself, from M_t's folder
        model = on_device(model, cfg)
    prompts = [render(tok, format_prompt(ex)) for ex in examples]
    responses, finished, n_trunc = generate_fn(
        model, tok, prompts, n=int(s.n), max_new_tokens=int(s.max_new_tokens), temperature=float(s.temperature),
        top_p=float(s.top_p), batch_size=int(s.batch_size), seed=int(cfg.seed) * 1000 + t,
        max_prompt_length=int(cfg.model.max_prompt_length), desc=f"sample M{t}", return_finished=True,
    )
    n_cut = sum(not f for row in finished for f in row)
    summary = {"n_prompts": len(examples), "n_responses": sum(map(len, responses)), "n_prompts_truncated": n_trunc,
               "n_responses_cut": n_cut}  # cut: reached sampling.max_new_tokens before the end of turn
    if not is_main():  # several ranks: each sampled a shard, all hold every response; rank 0 writes
        return summary
    artifacts.write_jsonl(out / "samples.jsonl", (
        {"prompt_id": ex.id, "benchmark": ex.benchmark, "instruction": format_prompt(ex), "prompt": p, "responses": r,
         "finished": f}
        for ex, p, r, f in zip(examples, prompts, responses, finished)))
    # gold answers are kept apart: only the reward-quality metrics read them, never a rewarder
    artifacts.write_jsonl(out / "labels.jsonl", ({"prompt_id": ex.id, "answer": ex.answer} for ex in examples))
    return summary
