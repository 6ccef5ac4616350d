"""The decode loop's batch size on SmolLM2, on the generative evaluation's own work, side by side in one run:

    .venv/bin/python experiments/perf/batch_size.py [--questions Q] [--batches 16,32,64] [--reps R] [--dtype float32]
    .venv/bin/python experiments/perf/batch_size.py --loglik [--questions 200] [--batches 64,256] [--reps 2]

The first Q ARC-Easy test questions in the evaluation's prompt (``cream.stages.evaluate.generative``), greedy, up to
256 new tokens, rows ending at the end of turn, generated with ``cream.sampling.hf.generate(engine="loop")`` at
each batch size, interleaved; per batch size: seconds (median of R), tokens generated, tokens/s, the time relative
to the first batch size, and the share of outputs identical to the first batch size's (float rounding can depend on
the batch's shape).

``--loglik``: the log-likelihood evaluation's work instead (``cream.stages.evaluate.loglik``: the first Q ARC-Easy
test questions in lm-eval's format, scored from shared contexts), each batch size being option sequences per forward
(``eval.loglik_batch_size``); seconds and the largest difference of a log-likelihood from the first batch size's.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=96)
    ap.add_argument("--batches", default="16,32,64")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--loglik", action="store_true")
    a = ap.parse_args()

    import torch
    from bf16_effects import smollm2_dir

    from cream.data.benchmarks import load_benchmark
    from cream.data.prompts import format_prompt, render
    from cream.models.loading import load_model, load_tokenizer
    from cream.sampling.hf import generate

    d = smollm2_dir()
    tok = load_tokenizer(d)
    model = load_model(d).to(getattr(torch, a.dtype))
    qs = load_benchmark("arc_easy", "test", str(common.ROOT.parent / "shared" / "data"))[: a.questions]
    prompts = [render(tok, format_prompt(ex)) for ex in qs]
    batches = [int(b) for b in a.batches.split(",")]
    print(json.dumps({"machine": common.machine(), "questions": len(prompts), "dtype": a.dtype}), flush=True)
    if a.loglik:
        return _loglik(model, tok, qs, batches, a.reps)
    seconds: dict[int, list[float]] = {b: [] for b in batches}
    outputs: dict[int, list[str]] = {}
    for _ in range(a.reps):
        for b in batches:  # interleaved
            t0 = time.perf_counter()
            out, _ = generate(model, tok, prompts, max_new_tokens=256, batch_size=b, max_prompt_length=512,
                              progress=False, engine="loop")
            seconds[b].append(time.perf_counter() - t0)
            outputs[b] = [o[0] for o in out]
    first = statistics.median(seconds[batches[0]])
    for b in batches:
        s = statistics.median(seconds[b])
        n_tok = sum(len(tok(o, add_special_tokens=False).input_ids) for o in outputs[b])
        same = sum(x == y for x, y in zip(outputs[b], outputs[batches[0]])) / len(prompts)
        print(json.dumps({f"batch {b}": {"s": round(s, 1), "tokens": n_tok, "tok/s": round(n_tok / s, 1),
                                         f"time / batch {batches[0]}": round(s / first, 3),
                                         f"identical to batch {batches[0]}": same}}), flush=True)
    print(json.dumps({"peak": common.rss_mb()}), flush=True)


def _loglik(model, tok, qs, batches, reps) -> None:
    from cream.evaluation import lm_eval_format
    from cream.models.scoring import score_shared_context

    _, seqs, starts = lm_eval_format.requests(tok, qs, 768)
    sizes = [len(ex.choices) for ex in qs]
    seconds: dict[int, list[float]] = {b: [] for b in batches}
    lps: dict[int, list[float]] = {}
    for _ in range(reps):
        for b in batches:  # interleaved
            t0 = time.perf_counter()
            lps[b], _ = score_shared_context(model, seqs, starts, sizes, tok.pad_token_id, batch_size=b,
                                             progress=False)
            seconds[b].append(time.perf_counter() - t0)
    first = statistics.median(seconds[batches[0]])
    for b in batches:
        s = statistics.median(seconds[b])
        diff = max(abs(x - y) for x, y in zip(lps[b], lps[batches[0]]))
        print(json.dumps({f"loglik, {b} sequences per forward": {"s": round(s, 2),
                                                           f"time / {batches[0]}": round(s / first, 3),
                                                           "max |loglik difference|": diff}}), flush=True)
    print(json.dumps({"peak": common.rss_mb()}), flush=True)


if __name__ == "__main__":
    main()
