"""Reference reuse: one iteration's reward + DPO with the reference log-probs reused from the reward step
(what the pipeline does) vs recomputing them with a resident reference model during DPO; and the peak
RSS of the DPO step without a reference model vs policy-only training vs with a reference model.

    .venv/bin/python experiments/perf/reference_reuse.py [--size tiny|20m] [--prompts P] [--reps R]

At the pipeline's scale: P=64 prompts x N=4 responses (the four options' targets of shipped ARC-Easy
prompts), the reward step scores them with M_t, M_0 and M_{t-1} (three ``score_sequences`` passes, each
model loaded then freed, as ``cream.rewarders.implicit`` does), then DPO on one pair per prompt, batch
16, 2 epochs, through ``make_trainer`` as the DPO stage does.  Three variants, each in a fresh
interpreter, interleaved R times:

* ``reuse``:       DPOModule, ref log-probs = M_t's log-probs from the reward step (no reference model)
* ``recompute``:   the reference model M_t loaded and held during DPO, its log-probs computed every step
* ``policy_only``: the same Lightning loop training the policy alone (loss = -mean response log-prob):
                   the memory floor of training this model

Peak RSS during DPO is VmHWM after resetting it (``/proc/self/clear_refs``) when the reward step ends.
The reward step is the same in all variants: M_t's log-probs are needed for the reward anyway.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import common  # experiments/perf/common.py: python puts the script's folder first on sys.path

VARIANTS = ("reuse", "recompute", "policy_only")


def child(size: str, variant: str, n_prompts: int) -> dict:
    import lightning as L
    import torch
    from transformers import LlamaForCausalLM  # noqa: F401 - imported before the baseline RSS is read

    from cream.data.prompts import format_prompt, render
    from cream.method.losses import SigmoidLoss
    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import response_logps, score_sequences
    from cream.models.tokens import encode_pair
    from cream.records import PairRow
    from cream.training.datamodules import PreferenceDataModule
    from cream.training.dpo_module import DPOModule
    from cream.training.trainer import fit, make_trainer

    base_rss = common.rss_mb()["rss_mb"]
    d = common.model_dir(size)
    tok = load_tokenizer(d)
    exs = common.arc_examples(n_prompts)

    # ---- reward step: three models score every response, one at a time
    t0 = time.perf_counter()
    prompts = [render(tok, format_prompt(ex)) for ex in exs]
    resp = [[f"The answer is {c}.\nAnswer: {lab}" for c, lab in zip(ex.choices, ex.labels)] for ex in exs]
    enc = [encode_pair(tok, p, r, common.MAX_LENGTH, common.MAX_PROMPT_LENGTH)
           for p, rs in zip(prompts, resp) for r in rs]
    seqs, starts = [e[0] for e in enc], [e[1] for e in enc]
    scores = []
    for _ in ("M_t", "M_0", "M_t-1"):
        m = load_model(d)
        scores.append(score_sequences(m, seqs, starts, tok.pad_token_id, batch_size=32, progress=False))
        del m
    policy_lp = scores[0]
    pairs, i = [], 0
    for ex, p, rs in zip(exs, prompts, resp):
        g, w = ex.labels.index(ex.answer), next(j for j, lab in enumerate(ex.labels) if lab != ex.answer)
        pairs.append({"prompt": p, "chosen": rs[g], "rejected": rs[w],
                      "ref_logp_chosen": policy_lp[i + g], "ref_logp_rejected": policy_lp[i + w]})
        i += len(rs)
    reward_s = time.perf_counter() - t0

    # ---- DPO step, peak memory counted from here
    Path("/proc/self/clear_refs").write_text("5")
    before = common.rss_mb()["rss_mb"]
    t1 = time.perf_counter()
    L.seed_everything(0, verbose=False)
    model = load_model(d)
    cfg = common.compose_cfg(["regularizer=none"])
    B = common.DPO["batch_size"]
    dm = PreferenceDataModule(tok, [PairRow.from_json(p) for p in pairs], [1.0] * len(pairs), batch_size=B,
                              max_length=common.MAX_LENGTH, max_prompt_length=common.MAX_PROMPT_LENGTH, seed=0)
    kw = dict(lr=common.DPO["lr"], weight_decay=common.DPO["weight_decay"], warmup_ratio=common.DPO["warmup_ratio"],
              total_steps=dm.steps(2))
    loss = SigmoidLoss(common.DPO["beta"])
    if variant == "reuse":
        module = DPOModule(model, loss, **kw)
    elif variant == "recompute":
        ref = load_model(d).eval().requires_grad_(False)

        class RefDPO(DPOModule):
            def training_step(self, batch, batch_idx):
                with torch.no_grad():
                    lp = response_logps(ref, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
                batch["ref_logp_chosen"], batch["ref_logp_rejected"] = lp.chunk(2)
                return super().training_step(batch, batch_idx)

        module = RefDPO(model, loss, **kw)
    else:
        class PolicyOnly(DPOModule):
            def training_step(self, batch, batch_idx):
                lp = response_logps(self.model, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
                out = -lp.mean()
                self.log("train/loss", out, batch_size=lp.shape[0] // 2)
                return out

        module = PolicyOnly(model, loss, **kw)
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(cfg, Path(out), 2)
        fit(trainer, module, dm, Path(out))
    dpo_s = time.perf_counter() - t1
    m = common.rss_mb()
    return {"reward_s": reward_s, "dpo_s": dpo_s, "iteration_s": reward_s + dpo_s, "steps": trainer.global_step,
            "dpo_peak_mb": m["peak_mb"], "rss_before_dpo_mb": before, "rss_after_imports_mb": base_rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=list(common.SIZES))
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.size, a.child, a.prompts)))
        return
    model, _ = common.load(a.size)
    print(common.describe(a.size, model), f"| {a.prompts} prompts x 4 responses, {a.reps} reps", flush=True)
    del model
    me = Path(__file__).resolve()
    runs = {v: [] for v in VARIANTS}
    for rep in range(a.reps):
        for v in VARIANTS[rep % 3:] + VARIANTS[: rep % 3]:
            r = common.run_child(me, ["--child", v, "--size", a.size, "--prompts", str(a.prompts)])
            runs[v].append(r)
            print(f"  rep {rep} {v:<12} reward {r['reward_s']:6.2f}s  dpo {r['dpo_s']:6.2f}s  "
                  f"dpo peak {r['dpo_peak_mb']:7.0f} MiB", flush=True)
    med = {v: {k: common.median([r[k] for r in runs[v]]) for k in runs[v][0]} for v in VARIANTS}
    pr = lambda f, x, y: round(common.median([f(p) / f(q) for p, q in zip(runs[x], runs[y])]), 3)
    growth = lambda r: r["dpo_peak_mb"] - r["rss_before_dpo_mb"]
    fig = {
        "iteration_s": {v: round(med[v]["iteration_s"], 2) for v in VARIANTS},
        "reward_s": {v: round(med[v]["reward_s"], 2) for v in VARIANTS},
        "dpo_s": {v: round(med[v]["dpo_s"], 2) for v in VARIANTS},
        "iteration_recompute_over_reuse": pr(lambda r: r["iteration_s"], "recompute", "reuse"),
        "dpo_recompute_over_reuse": pr(lambda r: r["dpo_s"], "recompute", "reuse"),
        "dpo_peak_mb": {v: round(med[v]["dpo_peak_mb"], 1) for v in VARIANTS},
        "dpo_peak_growth_mb": {v: round(common.median([growth(r) for r in runs[v]]), 1) for v in VARIANTS},
        "peak_reuse_over_policy_only": pr(lambda r: r["dpo_peak_mb"], "reuse", "policy_only"),
        "peak_reuse_over_recompute": pr(lambda r: r["dpo_peak_mb"], "reuse", "recompute"),
        "steps": runs["reuse"][0]["steps"], "prompts": a.prompts, "reps": a.reps,
    }
    fig["targets"] = {"peak_reuse/policy_only<=1.1": fig["peak_reuse_over_policy_only"] <= 1.1}
    print(f"\nreference reuse ({a.size}, medians of {a.reps}, {fig['steps']} DPO steps):")
    for v in VARIANTS:
        print(f"  {v:<12} reward {med[v]['reward_s']:6.2f}s + dpo {med[v]['dpo_s']:6.2f}s "
              f"= {med[v]['iteration_s']:6.2f}s   DPO peak RSS {med[v]['dpo_peak_mb']:7.0f} MiB "
              f"(+{fig['dpo_peak_growth_mb'][v]:.0f} during DPO)")
    print(f"  iteration: recompute / reuse = {fig['iteration_recompute_over_reuse']:.3f}x "
          f"(DPO step alone {fig['dpo_recompute_over_reuse']:.3f}x)")
    print(f"  DPO peak RSS: reuse / policy-only = {fig['peak_reuse_over_policy_only']:.3f}x (target <= 1.1), "
          f"reuse / with reference model = {fig['peak_reuse_over_recompute']:.3f}x")
    common.emit("reference_reuse", a.size, fig)


if __name__ == "__main__":
    main()
