"""Sampling: batched generation with the KV cache (``cream.sampling.hf.generate``, length-sorted batches
of 32 prompts) vs one prompt at a time (``batch_size=1``), the sample stage's settings otherwise
(N=4 per prompt, T=0.7, top-p 0.9, 48 new tokens).

    .venv/bin/python experiments/perf/sampling.py [--size tiny|20m] [--prompts P] [--reps R]

Sampling draws different tokens in the two modes (the seed is per batch), so the work is reported as
generated tokens as well as prompts: the speedup is given on both.
"""
from __future__ import annotations

import argparse
import time

import common  # experiments/perf/common.py: python puts the script's folder first on sys.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=list(common.SIZES))
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    from cream.data.prompts import format_prompt, render
    from cream.sampling.hf import generate

    model, tok = common.load(a.size)
    print(common.describe(a.size, model), f"| {a.prompts} prompts x 4 samples, {a.reps} reps", flush=True)
    prompts = [render(tok, format_prompt(ex)) for ex in common.arc_examples(a.prompts)]
    kw = dict(n=4, max_new_tokens=48, temperature=0.7, top_p=0.9, max_prompt_length=common.MAX_PROMPT_LENGTH,
              progress=False)

    def run(bs: int, seed: int):
        t0 = time.perf_counter()
        out, _ = generate(model, tok, prompts, batch_size=bs, seed=seed, **kw)
        s = time.perf_counter() - t0
        # approx.: re-tokenized, +1 for the end
        n_tok = sum(len(tok(r, add_special_tokens=False)["input_ids"]) + 1 for rs in out for r in rs)
        return s, n_tok

    run(32, 99)  # warm-up
    runs = {"batched": [], "one_at_a_time": []}
    for rep in range(a.reps):
        for k in (["batched", "one_at_a_time"] if rep % 2 == 0 else ["one_at_a_time", "batched"]):
            runs[k].append(run(32 if k == "batched" else 1, rep))
        print(f"  rep {rep}: " + "  ".join(f"{k} {runs[k][-1][0]:.2f}s ({runs[k][-1][1]} tok)" for k in runs),
              flush=True)
    sp_prompts = common.median([o[0] / b[0] for b, o in zip(runs["batched"], runs["one_at_a_time"])])
    sp_tokens = common.median([(b[1] / b[0]) / (o[1] / o[0]) for b, o in zip(runs["batched"], runs["one_at_a_time"])])
    med = {k: (common.median([r[0] for r in v]), common.median([r[1] / r[0] for r in v])) for k, v in runs.items()}
    print(f"\ngeneration ({a.size}, {a.prompts} prompts x 4, medians of {a.reps}):")
    for k, (s, tps) in med.items():
        print(f"  {k:<14} {s:7.2f} s   {a.prompts / s:7.2f} prompts/s   {tps:8.0f} generated tokens/s")
    print(f"  batched speedup: {sp_prompts:.2f}x in prompts/s, {sp_tokens:.2f}x in generated tokens/s")
    common.emit("sampling", a.size, {
        "s": {k: round(v[0], 3) for k, v in med.items()}, "tokens_per_s": {k: round(v[1], 1) for k, v in med.items()},
        "speedup_prompts": round(sp_prompts, 2), "speedup_tokens": round(sp_tokens, 2), "prompts": a.prompts,
        "reps": a.reps})


if __name__ == "__main__":
    main()
