"""Numerics of the reused reference under mixed precision: how far is DPO's step-0 margin from zero?

Under ``trainer=gpu`` (``bf16-mixed``) with ``model.dtype=bfloat16`` (the Llama configs), the reward step
scores M_t's responses with bf16 weights and bf16 compute, and DPO reuses those scores as the reference
log-probs.  The policy it trains starts as the same M_t, but loaded as float32 master weights and run
under bf16 autocast (where softmax, norms and the log-softmax stay float32).  So at step 0 the policy's
log-probs are not exactly the reference's, and Delta = log pi_theta - log pi_ref is rounding noise, not
zero.  This script measures that noise against two alternatives for the reference:

- ``bf16``:  bf16 weights, bf16 compute (what the reward step does now);
- ``mixed``: float32 weights under bf16 autocast (the training step's own numerics);
- ``fp32``:  float32 throughout (the exact value, for scale).

The references are scored by ``score_sequences`` as the reward step does it (length-sorted batches of 32). The
policy is always float32 weights under bf16 autocast, batched as the DPO step batches (chosen and
rejected of ``--batch`` pairs in one forward).  Reported per variant: |Delta| per sequence (median, p90,
max), the step-0 margin beta * (Delta_chosen - Delta_rejected) (mean |.|, max |.|), the step-0 loss minus
log 2, and the share of pairs whose step-0 margin is already positive (``rewards/accuracies`` at step 0;
0.5 is what pure noise gives; with an exact reference every margin is 0, and so is this share).  CPU bf16 (oneDNN)
rounds like GPU bf16 in kind, not bit for bit.  The last line is one JSON object.

    python experiments/perf/ref_precision.py --size tiny
    python experiments/perf/ref_precision.py --model outputs/<date>/<time>/sft/model   # a trained M1
    python experiments/perf/ref_precision.py --model outputs/<date>/<time>/sft/model --repeat 8   # longer responses
"""
from __future__ import annotations

import argparse
import json
import math
import statistics

import torch
from common import DPO, describe, encode_pairs, load, preference_pairs


def _policy_logps(model, seqs, starts, pad_id) -> list[float]:
    """The DPO step's forward at step 0: all ``seqs`` in one batch, float32 weights under bf16 autocast."""
    from cream.models.scoring import pad_batch, response_logps

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc = pad_batch(seqs, starts, pad_id)
        return response_logps(model, enc["input_ids"], enc["attention_mask"], enc["response_mask"]).float().tolist()


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="tiny", choices=["tiny", "20m"])
    ap.add_argument("--model", default=None, help="a saved model folder instead of a --size built with random weights")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--batch", type=int, default=DPO["batch_size"])
    ap.add_argument("--repeat", type=int, default=1, help="each response written this many times (longer responses)")
    args = ap.parse_args()
    torch.manual_seed(0)

    from cream.models.scoring import score_sequences

    if args.model:
        from cream.models.loading import load_model, load_tokenizer

        model, tok, name = load_model(args.model), load_tokenizer(args.model), args.model
    else:
        model, tok = load(args.size)
        name = args.size
    print(describe(name, model))
    model.eval()
    pairs = preference_pairs(tok, args.pairs)
    for p in pairs:
        p["chosen"], p["rejected"] = (" ".join([p[k]] * args.repeat) for k in ("chosen", "rejected"))
    enc = encode_pairs(tok, pairs)
    pad = tok.pad_token_id
    # the DPO step: one forward over the chosen then the rejected of a batch of pairs
    pol_c, pol_r = [], []
    for b in range(0, len(enc), args.batch):
        chunk = enc[b: b + args.batch]
        lp = _policy_logps(model, [e[0] for e in chunk] + [e[2] for e in chunk],
                           [e[1] for e in chunk] + [e[3] for e in chunk], pad)
        pol_c += lp[: len(chunk)]
        pol_r += lp[len(chunk):]
    # the reward step's own scoring (length-sorted batches of 32), in three precisions
    seqs = [e[0] for e in enc] + [e[2] for e in enc]
    starts = [e[1] for e in enc] + [e[3] for e in enc]
    n = len(enc)

    def score() -> list[float]:
        return score_sequences(model, seqs, starts, pad, batch_size=32, progress=False)

    refs = {"fp32": score()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        refs["mixed"] = score()
    model.to(torch.bfloat16)  # last: the policy and the other references are done with float32 weights
    refs["bf16"] = score()

    beta = DPO["beta"]
    tokens = [len(e[0]) - e[1] for e in enc] + [len(e[2]) - e[3] for e in enc]
    result: dict = {"model": name, "pairs": n, "beta": beta, "repeat": args.repeat,
                    "median_response_tokens": statistics.median(tokens),
                    "median_abs_logp": round(statistics.median(abs(x) for x in refs["fp32"]), 2)}
    print(f"{n} pairs, median response {result['median_response_tokens']} tokens, "
          f"median |log p| {result['median_abs_logp']}")
    print(f"{'reference':>9} | {'|Delta| median':>14} {'p90':>8} {'max':>8} | {'|margin| mean':>13} {'max':>8} | "
          f"{'loss - log2':>11} | {'margin > 0':>10}")
    for key in ("bf16", "mixed", "fp32"):
        ref = refs[key]
        d_c = [pol_c[i] - ref[i] for i in range(n)]
        d_r = [pol_r[i] - ref[n + i] for i in range(n)]
        delta = [abs(x) for x in d_c + d_r]
        margin = [beta * (c - r) for c, r in zip(d_c, d_r)]
        loss = statistics.fmean(-math.log(1 / (1 + math.exp(-m))) for m in margin)
        row = {"abs_delta_median": statistics.median(delta), "abs_delta_p90": _quantile(delta, 0.9),
               "abs_delta_max": max(delta), "abs_margin_mean": statistics.fmean(abs(m) for m in margin),
               "abs_margin_max": max(abs(m) for m in margin), "loss_minus_log2": loss - math.log(2),
               "share_margin_positive": sum(m > 0 for m in margin) / n}
        result[key] = {k: float(f"{v:.3g}") for k, v in row.items()}
        print(f"{key:>9} | {row['abs_delta_median']:14.3g} {row['abs_delta_p90']:8.3g} {row['abs_delta_max']:8.3g} | "
              f"{row['abs_margin_mean']:13.3g} {row['abs_margin_max']:8.3g} | {row['loss_minus_log2']:11.2g} | "
              f"{row['share_margin_positive']:10.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
