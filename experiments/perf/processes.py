"""One process of two threads vs two processes of one thread each, on the same inference work (SmolLM2):

    .venv/bin/python experiments/perf/processes.py [--reps R] [--dtype float32] [--parts decode,loglik,reward]

Each workload runs (a) in one process with 2 threads over all its items and (b) as two processes of one thread
each over the two halves, at once. Every process loads the model, waits at a barrier, then times its work;
the figure is the wall time of the work (for (b) the later of the two), medians of R interleaved repeats, and
the ratio a / b (above 1: the two processes finish the same work sooner).

- decode: 64 ARC-Easy train prompts in the chat template, greedy, 64 new tokens forced, batch 32 per process
  (``cream.sampling.decode``);
- loglik: the first 200 ARC-Easy test questions in lm-eval's format, scored from shared contexts;
- reward: ``score_sequences`` on 256 prompt + response sequences (4 per prompt, ARC-Easy train answers).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time

import common


def _work(part: str, dtype: str, shard: int, shards: int, threads: int, barrier, out) -> None:
    import torch

    torch.set_num_threads(threads)
    from bf16_effects import smollm2_dir

    from cream.data.benchmarks import load_benchmark
    from cream.data.prompts import format_prompt, render, sft_target
    from cream.evaluation import lm_eval_format
    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences, score_shared_context
    from cream.models.tokens import encode_pair, encode_prompt
    from cream.sampling import decode as loop

    d = smollm2_dir()
    tok = load_tokenizer(d)
    model = load_model(d).to(getattr(torch, dtype))
    data = str(common.ROOT.parent / "shared" / "data")
    train = load_benchmark("arc_easy", "train", data)
    pad = tok.pad_token_id
    if part == "decode":
        enc = sorted((encode_prompt(tok, render(tok, format_prompt(ex)), 512)[0] for ex in train[:64]), key=len)
        mine = enc[shard::shards]

        def run():
            loop.decode(model, [loop.Row(p) for p in mine], max_new_tokens=64, stops=[], pad_id=pad, batch_size=32)
    elif part == "loglik":
        qs = load_benchmark("arc_easy", "test", data)[:200][shard::shards]
        _, seqs, starts = lm_eval_format.requests(tok, qs, 768)
        sizes = [len(ex.choices) for ex in qs]

        def run():
            score_shared_context(model, seqs, starts, sizes, pad, batch_size=64, progress=False)
    else:  # reward
        rp = [render(tok, format_prompt(ex)) for ex in train[:64]]
        enc_r = [encode_pair(tok, p, sft_target(ex) + " " * k, 768, 512) for p, ex in zip(rp, train) for k in range(4)]
        enc_r = enc_r[shard::shards]

        def run():
            score_sequences(model, [e[0] for e in enc_r], [e[1] for e in enc_r], pad)
    barrier.wait()
    t0 = time.perf_counter()
    run()
    out.put(time.perf_counter() - t0)


def measure(part: str, dtype: str, shards: int, threads: int) -> float:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(shards), ctx.Queue()
    procs = [ctx.Process(target=_work, args=(part, dtype, i, shards, threads, barrier, out)) for i in range(shards)]
    for p in procs:
        p.start()
    times = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--parts", default="decode,loglik,reward")
    a = ap.parse_args()
    if unknown := set(a.parts.split(",")) - {"decode", "loglik", "reward"}:
        ap.error(f"--parts: unknown {sorted(unknown)} (decode, loglik, reward)")
    print(json.dumps({"machine": common.machine()}), flush=True)
    for part in a.parts.split(","):
        runs = {"one process, 2 threads": [], "two processes, 1 thread each": []}
        for _ in range(a.reps):  # interleaved
            runs["one process, 2 threads"].append(measure(part, a.dtype, 1, 2))
            runs["two processes, 1 thread each"].append(measure(part, a.dtype, 2, 1))
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(json.dumps({f"{part} {a.dtype}": {**{f"{k} s": round(v, 2) for k, v in med.items()},
                                                "ratio": round(med["one process, 2 threads"]
                                                               / med["two processes, 1 thread each"], 3)}}),
              flush=True)


if __name__ == "__main__":
    main()
