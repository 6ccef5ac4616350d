"""What bfloat16 inference does to SmolLM2-135M-Instruct's numbers (float32 weights cast to bf16 after loading).

    .venv/bin/python experiments/perf/bf16_effects.py [--model DIR] [--questions Q] [--generate G] [--prompts P]

- reward: N = 4 responses sampled (T = 0.7, top-p 0.9, 128 new tokens) for P ARC-Easy train prompts in the
  sample stage's format; each response scored log pi(y|x) (the reward stage's quantity) in float32 and in bf16:
  the per-prompt Kendall tau between the two rankings, the share of prompts whose (best, worst) pair
  changes, and the same for the length-normalized log-likelihood (the ranking M0 gives at t = 1);
- loglik evaluation: lm-eval acc / acc_norm on the first Q ARC-Easy dev questions in float32 and bf16:
  per-question agreement of the predictions and the accuracy change;
- generative evaluation: greedy answers (the paper's prompt, 256 new tokens) to the first G dev questions:
  identical outputs, per-question agreement of the lenient answer, accuracy change.
Model: ``--model`` a float32 folder (default: SmolLM2 dequantized once into $CREAM_PERF_CACHE/smollm2).
"""
from __future__ import annotations

import argparse
import json
import time

import common


def smollm2_dir():
    return common.model_dir("smollm2")


def kendall(a, b) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(a, b).statistic
    return 1.0 if t != t else float(t)  # nan: constant rankings, identical


def best_worst(v):
    return max(range(len(v)), key=v.__getitem__), min(range(len(v)), key=v.__getitem__)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--generate", type=int, default=60)
    ap.add_argument("--prompts", type=int, default=48)
    a = ap.parse_args()

    import torch

    from cream.data.benchmarks import load_benchmark
    from cream.data.prompts import format_prompt, pool_messages, render, render_messages
    from cream.evaluation import lm_eval_format
    from cream.evaluation.answers import extract, matches
    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences, score_shared_context
    from cream.models.tokens import encode_pair
    from cream.sampling.hf import generate

    d = a.model or smollm2_dir()
    tok = load_tokenizer(d)
    f32 = load_model(d)
    b16 = load_model(d).to(torch.bfloat16)
    data = str(common.ROOT.parent / "shared" / "data")
    train = load_benchmark("arc_easy", "train", data)[: a.prompts]
    dev = load_benchmark("arc_easy", "validation", data)
    out = {"model": str(d), "threads": torch.get_num_threads()}

    # reward: the same responses ranked by float32 and bf16 log-probs
    prompts = [render_messages(tok, pool_messages(ex, "cot")) for ex in train]
    t0 = time.perf_counter()
    resp, _ = generate(f32, tok, prompts, n=4, max_new_tokens=128, temperature=0.7, top_p=0.9, batch_size=16, seed=0,
                       progress=False, engine="loop")
    enc = [encode_pair(tok, p, r, 768, 512) for p, rs in zip(prompts, resp) for r in rs]
    seqs, starts = [e[0] for e in enc], [e[1] for e in enc]
    lens = [len(s) - st for s, st in zip(seqs, starts)]
    lp = {k: score_sequences(m, seqs, starts, tok.pad_token_id, batch_size=32, progress=False)
          for k, m in (("f32", f32), ("bf16", b16))}
    for name, norm in (("logp", False), ("logp_per_token", True)):
        v = {k: [x / n if norm else x for x, n in zip(vals, lens)] for k, vals in lp.items()}
        taus, changed = [], 0
        for i in range(len(prompts)):
            a32, a16 = v["f32"][4 * i: 4 * i + 4], v["bf16"][4 * i: 4 * i + 4]
            taus.append(kendall(a32, a16))
            changed += best_worst(a32) != best_worst(a16)
        out[f"reward_{name}"] = {"prompts": len(prompts), "tau_mean": sum(taus) / len(taus), "tau_min": min(taus),
                                 "pairs_changed": changed / len(prompts)}
    out["reward_abs_logp_diff_mean"] = sum(abs(x - y) for x, y in zip(lp["f32"], lp["bf16"])) / len(seqs)
    out["reward_seconds"] = time.perf_counter() - t0
    print(json.dumps(out), flush=True)

    # loglik evaluation
    qs = dev[: a.questions]
    _, seqs, starts = lm_eval_format.requests(tok, qs, 768)
    sizes = [len(ex.choices) for ex in qs]
    preds = {}
    for k, m in (("f32", f32), ("bf16", b16)):
        lps, _ = score_shared_context(m, seqs, starts, sizes, tok.pad_token_id, batch_size=64, progress=False)
        res, j = [], 0
        for ex, n in zip(qs, sizes):
            res.append(lm_eval_format.predict(ex, lps[j: j + n]))
            j += n
        preds[k] = res
    for i, metric in enumerate(("acc", "acc_norm")):
        p32, p16 = [p[i] for p in preds["f32"]], [p[i] for p in preds["bf16"]]
        acc = {k: sum(p[i] == ex.answer for p, ex in zip(preds[k], qs)) / len(qs) for k in preds}
        out[f"loglik_{metric}"] = {"questions": len(qs), "agree": sum(x == y for x, y in zip(p32, p16)) / len(qs),
                                   "acc_f32": acc["f32"], "acc_bf16": acc["bf16"]}
    print(json.dumps(out), flush=True)

    # generative evaluation
    gq = dev[: a.generate]
    gp = [render(tok, format_prompt(ex)) for ex in gq]
    outs = {k: generate(m, tok, gp, max_new_tokens=256, batch_size=16, progress=False)[0]
            for k, m in (("f32", f32), ("bf16", b16))}
    ans = {k: [extract(ex, o[0], "lenient") for ex, o in zip(gq, v)] for k, v in outs.items()}
    out["generate"] = {"questions": len(gq),
                       "same_output": sum(x == y for x, y in zip(outs["f32"], outs["bf16"])) / len(gq),
                       "agree": sum(x.answer == y.answer for x, y in zip(ans["f32"], ans["bf16"])) / len(gq),
                       **{f"acc_{k}": sum(matches(ex, f, "lenient") for ex, f in zip(gq, v)) / len(gq)
                          for k, v in ans.items()}}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
