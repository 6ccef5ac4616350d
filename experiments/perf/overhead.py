"""Overhead of our DPO training step (Lightning, loss, masking, logging, data pipeline) over the bare
policy forward + backward + optimizer step on the very same token tensors.

    .venv/bin/python experiments/perf/overhead.py [--size tiny|20m] [--steps N] [--reps R]

Three loops over the same batches (the pipeline's PreferenceDataModule, epoch 0), same start weights,
interleaved R times in one process:

* ``ours``:     ``cream.training.trainer.make_trainer`` + ``DPOModule`` + ``PreferenceDataModule``, exactly as the
                DPO stage runs them (CSV logging every step, grad clipping, cosine schedule, resume tracking).
* ``bare_hf``:  ``model(input_ids, attention_mask, labels=labels).loss.backward(); opt.step(); opt.zero_grad()``
                on pre-collated tensors: the plain HF forward (full logits), the usual "bare" training step.
* ``bare_min``: the same math as ours (``response_logps`` + DPO loss) in a plain loop, no Lightning, no
                data loader, no logging, no clipping: the floor our step can reach.

Per-step time in steady state (end of step 1 to end of the last step).
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import common  # experiments/perf/common.py: python puts the script's folder first on sys.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=list(common.SIZES))
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default: tiny 16, 20m 8)")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    steps = a.steps or {"tiny": 16, "20m": 8}[a.size]

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    from cream.method.losses import SigmoidLoss
    from cream.models.scoring import response_logps
    from cream.records import PairRow
    from cream.training.datamodules import PreferenceDataModule
    from cream.training.dpo_module import DPOModule
    from cream.training.trainer import fit, make_trainer

    B = common.DPO["batch_size"]
    model, tok = common.load(a.size)
    print(common.describe(a.size, model), f"| {steps} steps x {B} pairs, {a.reps} reps", flush=True)
    init = copy.deepcopy(model.state_dict())
    pairs = common.preference_pairs(tok, steps * B)
    common.add_ref_logps(model, tok, pairs)
    cfg = common.compose_cfg(["regularizer=none"])
    loss_fn = SigmoidLoss(common.DPO["beta"])

    def make_dm():
        return PreferenceDataModule(tok, [PairRow.from_json(p) for p in pairs], [1.0] * len(pairs), batch_size=B,
                                    max_length=common.MAX_LENGTH, max_prompt_length=common.MAX_PROMPT_LENGTH, seed=0)

    batches = list(make_dm().train_dataloader())  # the batches Lightning will see in epoch 0
    n_tok = sum(int(b["attention_mask"].sum()) for b in batches)
    n_resp = sum(int(b["response_mask"].sum()) for b in batches)

    class Clock(Callback):
        def __init__(self):
            self.ends = []

        def on_train_batch_end(self, *a):
            self.ends.append(time.perf_counter())

    def ours() -> float:
        model.load_state_dict(init)
        L.seed_everything(0, verbose=False)
        with tempfile.TemporaryDirectory() as out:
            dm = make_dm()
            module = DPOModule(model, loss_fn, lr=common.DPO["lr"], weight_decay=common.DPO["weight_decay"],
                               warmup_ratio=common.DPO["warmup_ratio"], total_steps=dm.steps(1))
            trainer = make_trainer(cfg, Path(out), 1)
            clock = Clock()
            trainer.callbacks.append(clock)
            fit(trainer, module, dm, Path(out))
        e = clock.ends
        torch.use_deterministic_algorithms(False)  # the trainer config turns it on; the bare loops run without it
        return (e[-1] - e[0]) / (len(e) - 1)

    def bare(kind: str) -> float:
        model.load_state_dict(init)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=common.DPO["lr"], weight_decay=common.DPO["weight_decay"])
        ends = []
        for b in batches:
            if kind == "bare_hf":
                labels = b["input_ids"].masked_fill(~b["response_mask"], -100)
                loss = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=labels).loss
            else:
                lp = response_logps(model, b["input_ids"], b["attention_mask"], b["response_mask"])
                c, r = lp.chunk(2)
                loss = loss_fn(c, r, b["ref_logp_chosen"], b["ref_logp_rejected"], b["weight"])[0].mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            ends.append(time.perf_counter())
        return (ends[-1] - ends[0]) / (len(ends) - 1)

    runs = {"ours": [], "bare_hf": [], "bare_min": []}
    fns = {"ours": ours, "bare_hf": lambda: bare("bare_hf"), "bare_min": lambda: bare("bare_min")}
    names = list(runs)
    bare("bare_min")  # warm-up (allocator, kernels)
    for rep in range(a.reps):
        for k in names[rep % 3:] + names[: rep % 3]:
            runs[k].append(fns[k]())
        print(f"  rep {rep}: " + "  ".join(f"{k} {runs[k][-1] * 1e3:7.1f} ms/step" for k in names), flush=True)

    med = {k: common.median(v) for k, v in runs.items()}
    ratio = {k: round(common.median([o / b for o, b in zip(runs["ours"], runs[k])]), 3)
             for k in ("bare_hf", "bare_min")}
    print(f"\nstep time ({a.size}, medians of {a.reps}; {n_tok / len(batches):.0f} tokens/step of which "
          f"{n_resp / len(batches):.0f} response tokens):")
    for k in names:
        print(f"  {k:<9} {med[k] * 1e3:8.1f} ms/step")
    print(f"  ours / bare_hf  = {ratio['bare_hf']:.3f}x (target <= 1.10)")
    print(f"  ours / bare_min = {ratio['bare_min']:.3f}x "
          "(Lightning + data pipeline + logging + clipping over the same math)")
    common.emit("overhead", a.size, {
        "ms_per_step": {k: round(v * 1e3, 2) for k, v in med.items()}, "ratio_ours_over": ratio,
        "targets": {"ours/bare_hf<=1.10": ratio["bare_hf"] <= 1.10, "ours/bare_min<=1.10": ratio["bare_min"] <= 1.10},
        "steps": steps, "batch_size": B, "reps": a.reps,
        "tokens_per_step": round(n_tok / len(batches)), "response_tokens_per_step": round(n_resp / len(batches))})


if __name__ == "__main__":
    main()
