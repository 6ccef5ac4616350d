"""Inference speed on SmolLM2-135M-Instruct, float32 and bf16, side by side in one run (interleaved, medians):

    .venv/bin/python experiments/perf/inference.py [--model DIR] [--prompts P] [--reps R] [--new N]

- decode: P ARC-Easy prompts in the chat template (the evaluation's), greedy, N new tokens forced (no stop id),
  at batch 16 and 64: the bare decode step (prefill, then a forward of one token per row with the KV cache and
  argmax, nothing else), this project's loop (``cream.sampling.decode``) and HF ``generate``; tokens/s and
  the ratio to the bare step;
- generation with stops (what sampling and the generative evaluation do): the same prompts, 128 new tokens,
  rows ending at their end of turn: ``generate(engine=loop)`` vs ``generate(engine=hf)`` seconds;
- loglik evaluation: the first 200 (``--questions``) ARC-Easy test questions in lm-eval's format, every option
  scored whole (``score_sequences``) vs from the shared context (``score_shared_context``): tokens per question,
  seconds;
- reward scoring: ``score_sequences`` on prompt + response sequences (the responses: the reference answers
  of ARC-Easy train questions, 4 per prompt), tokens/s.
Peak RSS of the process is printed at the end (the model in both dtypes is loaded once).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--parts", default="decode,stops,loglik,reward")
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    a = ap.parse_args()

    import torch
    from bf16_effects import smollm2_dir

    from cream.data.benchmarks import load_benchmark
    from cream.data.prompts import format_prompt, render, sft_target
    from cream.evaluation import lm_eval_format
    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences, score_shared_context
    from cream.models.tokens import encode_pair, encode_prompt
    from cream.sampling import decode as loop
    from cream.sampling.hf import generate

    d = a.model or smollm2_dir()
    tok = load_tokenizer(d)
    dtypes = a.dtypes.split(",")
    models = {k: load_model(d).to(getattr(torch, k)) for k in ("float32", "bfloat16") if k in dtypes}
    data = str(common.ROOT.parent / "shared" / "data")
    train = load_benchmark("arc_easy", "train", data)
    prompts = [render(tok, format_prompt(ex)) for ex in train[: a.prompts]]
    enc = sorted((encode_prompt(tok, p, 512)[0] for p in prompts), key=len)
    pad = tok.pad_token_id
    print(f"SmolLM2-135M-Instruct, {torch.get_num_threads()} threads, {a.prompts} prompts, {a.reps} reps", flush=True)
    res: dict = {}

    def timed(fn, *args):
        t0 = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t0

    @torch.inference_mode()
    def bare(model, bs):
        for i in range(0, len(enc), bs):
            cache, mask, logits, pos = loop._prefill(model, enc[i: i + bs], pad, "cpu")
            last = logits.argmax(-1)
            for _ in range(a.new - 1):
                mask = torch.cat([mask, mask.new_ones(len(last), 1)], 1)
                cache, logits = loop._forward(model, cache, input_ids=last[:, None], attention_mask=mask,
                                              position_ids=pos[:, None])
                pos, last = pos + 1, logits.argmax(-1)

    def ours(model, bs):
        loop.decode(model, [loop.Row(p) for p in enc], max_new_tokens=a.new, stops=[], pad_id=pad, batch_size=bs)

    @torch.inference_mode()
    def hf(model, bs):
        for i in range(0, len(enc), bs):
            batch = enc[i: i + bs]
            T = max(map(len, batch))
            ids = torch.full((len(batch), T), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, p in enumerate(batch):  # left padding
                ids[j, T - len(p):], mask[j, T - len(p):] = torch.tensor(p), 1
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.new, min_new_tokens=a.new,
                           do_sample=False, pad_token_id=pad, eos_token_id=None, use_cache=True)

    if "decode" in a.parts:
        for dtype, model in models.items():
            for bs in map(int, a.batches.split(",")):
                runs = {"bare": [], "ours": [], "hf_generate": []}
                for _ in range(a.reps):  # interleaved
                    for name, fn in (("bare", bare), ("ours", ours), ("hf_generate", hf)):
                        runs[name].append(len(enc) * a.new / timed(fn, model, bs))
                med = {k: statistics.median(v) for k, v in runs.items()}
                res[f"decode {dtype} batch {bs}"] = {**{f"{k} tok/s": round(v, 1) for k, v in med.items()},
                                                     "ours/bare": round(med["ours"] / med["bare"], 3),
                                                     "hf/bare": round(med["hf_generate"] / med["bare"], 3)}
                print(json.dumps({f"decode {dtype} batch {bs}": res[f"decode {dtype} batch {bs}"]}), flush=True)

    if "stops" in a.parts:
        for dtype, model in models.items():
            runs = {"loop": [], "hf": []}
            toks = {}
            for _ in range(a.reps):
                for eng in ("loop", "hf"):
                    t0 = time.perf_counter()
                    out, _ = generate(model, tok, prompts, max_new_tokens=128, batch_size=16, progress=False,
                                      engine=eng)
                    runs[eng].append(time.perf_counter() - t0)
                    toks[eng] = out
            same = sum(x == y for x, y in zip(toks["loop"], toks["hf"])) / len(prompts)
            med = {k: statistics.median(v) for k, v in runs.items()}
            res[f"generate with stops {dtype}"] = {"loop s": round(med["loop"], 2), "hf s": round(med["hf"], 2),
                                                   "hf/loop time": round(med["hf"] / med["loop"], 3),
                                                   "same outputs": same}
            print(json.dumps({f"generate with stops {dtype}": res[f"generate with stops {dtype}"]}), flush=True)

    if "loglik" in a.parts:
        qs = load_benchmark("arc_easy", "test", data)[: a.questions]
        _, seqs, starts = lm_eval_format.requests(tok, qs, 768)
        sizes = [len(ex.choices) for ex in qs]
        for dtype, model in models.items():
            runs = {"per_option": [], "shared": []}
            for _ in range(a.reps):
                runs["per_option"].append(timed(score_sequences, model, seqs, starts, pad))
                t0 = time.perf_counter()
                _, tokens = score_shared_context(model, seqs, starts, sizes, pad, batch_size=64, progress=False)
                runs["shared"].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) for k, v in runs.items()}
            res[f"loglik {dtype}"] = {"per_option s": round(med["per_option"], 2), "shared s": round(med["shared"], 2),
                                      "speedup": round(med["per_option"] / med["shared"], 3),
                                      "tokens/question per_option": round(tokens["tokens_per_sequence"] / len(qs), 1),
                                      "tokens/question shared": round(tokens["tokens_shared"] / len(qs), 1),
                                      "questions/s shared": round(len(qs) / med["shared"], 1)}
            print(json.dumps({f"loglik {dtype}": res[f"loglik {dtype}"]}), flush=True)

    if "reward" in a.parts:
        rp = [render(tok, format_prompt(ex)) for ex in train[:64]]
        enc_r = [encode_pair(tok, p, sft_target(ex) + " " * k, 768, 512) for p, ex in zip(rp, train) for k in range(4)]
        seqs, starts = [e[0] for e in enc_r], [e[1] for e in enc_r]
        n_tok = sum(map(len, seqs))
        runs = {k: [] for k in models}
        for _ in range(a.reps):
            for dtype, model in models.items():
                runs[dtype].append(n_tok / timed(score_sequences, model, seqs, starts, pad))
        med = {k: statistics.median(v) for k, v in runs.items()}
        res["reward scoring"] = {f"{k} tok/s": round(v, 1) for k, v in med.items()} | {
            "bf16/f32": round(med["bfloat16"] / med["float32"], 3), "sequences": len(seqs)}
        print(json.dumps({"reward scoring": res["reward scoring"]}), flush=True)
    print(json.dumps({"peak": common.rss_mb()}), flush=True)


if __name__ == "__main__":
    main()
