"""Implicit-reward scoring: ``cream.models.scoring.score_sequences`` over N responses per prompt vs a bare no-grad
forward over the same tokens (full logits).

    .venv/bin/python experiments/perf/scoring.py [--size tiny|20m] [--prompts P] [--reps R]

The responses are sampled by the model itself (``cream.sampling.hf.generate``, N=4, T=0.7, top-p 0.9,
48 new tokens: the sample stage's settings), then encoded with the pipeline's rule.  Four passes,
interleaved R times, batch 32 rows:

* ``ours``:         ``score_sequences`` (length-sorted batches; LM head only where a response token is predicted)
* ``bare``:         the same sorted batches through ``model(input_ids, attention_mask).logits`` under inference_mode
                    (full float32 logits, nothing else computed): the cost of just running the model
* ``unsorted``:     ours without length sorting (batches in input order): shows the padding saved
* ``full_logits``:  sorted batches, full float32 logits for every position, then log_softmax + gather on the
                    response positions: shows what not materializing prompt/pad logits saves
"""
from __future__ import annotations

import argparse
import time

import common  # experiments/perf/common.py: python puts the script's folder first on sys.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=list(common.SIZES))
    ap.add_argument("--prompts", type=int, default=64, help="prompts (x N=4 responses)")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()

    import torch

    from cream.data.prompts import format_prompt, render
    from cream.models.scoring import pad_batch, response_logps, score_sequences
    from cream.models.tokens import encode_pair
    from cream.sampling.hf import generate

    BS, N = 32, 4
    model, tok = common.load(a.size)
    print(common.describe(a.size, model), f"| {a.prompts} prompts x {N} responses, batch {BS}, {a.reps} reps",
          flush=True)
    prompts = [render(tok, format_prompt(ex)) for ex in common.arc_examples(a.prompts)]
    responses, _ = generate(model, tok, prompts, n=N, max_new_tokens=48, temperature=0.7, top_p=0.9, batch_size=32,
                            seed=0, max_prompt_length=common.MAX_PROMPT_LENGTH, progress=False)
    enc = [encode_pair(tok, p, r, common.MAX_LENGTH, common.MAX_PROMPT_LENGTH)
           for p, rs in zip(prompts, responses) for r in rs]
    seqs, starts = [e[0] for e in enc], [e[1] for e in enc]
    pad = tok.pad_token_id
    V = model.config.vocab_size

    def batches(sort: bool):
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i])) if sort else list(range(len(seqs)))
        return [pad_batch([seqs[i] for i in order[b:b + BS]], [starts[i] for i in order[b:b + BS]], pad)
                for b in range(0, len(order), BS)]

    sorted_b, unsorted_b = batches(True), batches(False)
    real = sum(map(len, seqs))
    padded = {k: sum(b["input_ids"].numel() for b in bs) for k, bs in (("sorted", sorted_b), ("unsorted", unsorted_b))}
    resp_preds = sum(len(s) - st for s, st in zip(seqs, starts))
    logits_mb = {"full": padded["sorted"] * V * 4 / 2**20, "ours": resp_preds * V * 4 / 2**20}
    model.eval()

    def ours():
        return score_sequences(model, seqs, starts, pad, batch_size=BS, progress=False)

    @torch.inference_mode()
    def bare():
        for b in sorted_b:
            _ = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits

    @torch.inference_mode()
    def unsorted():
        for b in unsorted_b:
            response_logps(model, b["input_ids"], b["attention_mask"], b["response_mask"])

    @torch.inference_mode()
    def full_logits():
        out = []
        for b in sorted_b:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.float()
            lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, b["input_ids"][:, 1:, None]).squeeze(-1)
            out.append((lp * b["response_mask"][:, 1:]).sum(1))
        return torch.cat(out)

    # the two ways of scoring agree (same sequences, sorted order)
    check = full_logits()
    o = ours()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    agree = max(abs(o[i] - check[j].item()) for j, i in enumerate(order))

    fns = {"ours": ours, "bare": bare, "unsorted": unsorted, "full_logits": full_logits}
    names = list(fns)
    runs = {k: [] for k in names}
    for rep in range(a.reps):
        for k in names[rep % 4:] + names[: rep % 4]:
            t0 = time.perf_counter()
            fns[k]()
            runs[k].append(time.perf_counter() - t0)
        print(f"  rep {rep}: " + "  ".join(f"{k} {runs[k][-1]:.3f}s" for k in names), flush=True)
    med = {k: common.median(v) for k, v in runs.items()}
    ratio = {k: round(common.median([x / y for x, y in zip(runs["ours"], runs[k])]), 3)
             for k in ("bare", "unsorted", "full_logits")}
    n = len(seqs)
    print(f"\nscoring {n} responses ({a.size}, medians of {a.reps}):")
    for k in names:
        print(f"  {k:<12} {med[k]:7.3f} s   {n / med[k]:8.1f} responses/s")
    print(f"  ours / bare        = {ratio['bare']:.3f}x (target <= 1.2)")
    print(f"  ours / unsorted    = {ratio['unsorted']:.3f}x  (padded tokens: sorted {padded['sorted']}, unsorted "
          f"{padded['unsorted']}, real {real}: sorting saves {1 - padded['sorted'] / padded['unsorted']:.0%} "
          "of the padded tokens)")
    print(f"  ours / full_logits = {ratio['full_logits']:.3f}x  (float32 logits materialized: "
          f"{logits_mb['ours']:.0f} MiB instead of {logits_mb['full']:.0f} MiB over the run)")
    print(f"  max |ours - full_logits| log-prob: {agree:.2e}")
    common.emit("scoring", a.size, {
        "s": {k: round(v, 4) for k, v in med.items()}, "responses_per_s": {k: round(n / v, 1) for k, v in med.items()},
        "ratio_ours_over": ratio, "targets": {"ours/bare<=1.2": ratio["bare"] <= 1.2},
        "padded_tokens": padded, "real_tokens": real,
        "float32_logits_mib": {k: round(v, 1) for k, v in logits_mb.items()},
        "max_abs_diff_vs_full_logits": agree, "n_responses": n, "batch_size": BS, "reps": a.reps})


if __name__ == "__main__":
    main()
