"""DPO training throughput: our DPOModule (Lightning, reference log-probs precomputed as the reward step
does) vs TRL's DPOTrainer (reference model in memory) vs TRL with ``precompute_ref_log_probs=True``.

    .venv/bin/python experiments/perf/dpo_vs_trl.py [--size tiny|20m|smollm2] [--steps N] [--reps R]

Every variant runs in a fresh interpreter (its peak RSS is its own), the variants interleaved, R times;
medians and ratios are printed.  Same model weights, same pairs (the shipped ARC-Easy prompts, gold
target vs a wrong option's target), same tokens (TRL is fed our tokenization: prompt_ids / chosen_ids /
rejected_ids), batch 16 pairs, AdamW (torch, not fused) lr 5e-4, weight decay 0.01, cosine with 10 %
warmup, grad clip 1.0, fp32, one epoch of steps x 16 pairs, CPU.  TRL otherwise keeps its defaults
except two that would make it do different work: bf16=False (we train fp32) and
gradient_checkpointing=False (we do not recompute activations).

Throughput is measured in steady state: from the end of the first optimizer step to the end of the
last one (data loading, loss, logging, optimizer included; start-up, the first step and the
end-of-epoch checkpoint excluded); the whole fit wall time is reported too.  A numerics check compares
our log-probs and loss on the first batch with TRL's ``compute_loss`` on the same tensors.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import common  # experiments/perf/common.py: python puts the script's folder first on sys.path

VARIANTS = ("ours", "trl_default", "trl_precomputed")


# --------------------------------------------------------------------------- children (one variant each)

def child_ours(size: str, steps: int) -> dict:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback
    from transformers import LlamaForCausalLM  # noqa: F401 - imported before the baseline RSS is read

    from cream.method.losses import SigmoidLoss
    from cream.records import PairRow
    from cream.training.datamodules import PreferenceDataModule
    from cream.training.dpo_module import DPOModule
    from cream.training.trainer import fit, make_trainer

    base = common.rss_mb()["rss_mb"]
    B = common.DPO["batch_size"]
    model, tok = common.load(size)
    pairs = common.preference_pairs(tok, steps * B)
    ref_s = common.add_ref_logps(model, tok, pairs)  # the reward step's pass, M_t = the policy before DPO
    cfg = common.compose_cfg(["regularizer=none"])
    L.seed_everything(0, verbose=False)

    class Clock(Callback):
        ends: list[float] = []

        def on_train_batch_end(self, *a):
            self.ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        out = Path(out)
        t0 = time.perf_counter()
        dm = PreferenceDataModule(tok, [PairRow.from_json(p) for p in pairs], [1.0] * len(pairs), batch_size=B,
                                  max_length=common.MAX_LENGTH, max_prompt_length=common.MAX_PROMPT_LENGTH, seed=0)
        module = DPOModule(model, SigmoidLoss(common.DPO["beta"]), lr=common.DPO["lr"],
                           weight_decay=common.DPO["weight_decay"], warmup_ratio=common.DPO["warmup_ratio"],
                           total_steps=dm.steps(1))
        trainer = make_trainer(cfg, out, 1)
        clock = Clock()
        trainer.callbacks.append(clock)
        fit(trainer, module, dm, out)
        fit_s = time.perf_counter() - t0
    e = clock.ends
    assert len(e) == steps, (len(e), steps)
    return {"pairs_per_s": (steps - 1) * B / (e[-1] - e[0]), "fit_s": fit_s, "ref_precompute_s": ref_s,
            "rss_base_mb": base, **common.rss_mb(), "threads": torch.get_num_threads()}


def make_trl_dataset(tok, pairs):
    from datasets import Dataset

    rows = []
    for c, cs, r, rs in common.encode_pairs(tok, pairs):
        assert c[:cs] == r[:rs]
        rows.append({"prompt_ids": c[:cs], "chosen_ids": c[cs:], "rejected_ids": r[rs:]})
    return Dataset.from_list(rows)


def trl_trainer(model, tok, dataset, precompute: bool, out: str, callbacks=(), steps: int | None = None):
    from trl import DPOConfig, DPOTrainer

    class PreTokenized(DPOTrainer):
        """TRL's trainer, fed our tokenization (the same token ids as ours) instead of re-tokenizing text."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    args = DPOConfig(
        output_dir=out, per_device_train_batch_size=common.DPO["batch_size"], learning_rate=common.DPO["lr"],
        weight_decay=common.DPO["weight_decay"], warmup_steps=common.DPO["warmup_ratio"], lr_scheduler_type="cosine",
        max_grad_norm=1.0, num_train_epochs=1, optim="adamw_torch", bf16=False, gradient_checkpointing=False,
        max_length=common.MAX_LENGTH, beta=common.DPO["beta"], report_to="none", save_strategy="no",
        disable_tqdm=True, seed=0, use_cpu=True, precompute_ref_log_probs=precompute,
    )
    return PreTokenized(model=model, args=args, train_dataset=dataset, processing_class=tok, callbacks=list(callbacks))


def child_trl(size: str, steps: int, precompute: bool) -> dict:
    import torch
    from transformers import LlamaForCausalLM, TrainerCallback  # noqa: F401
    from trl import DPOTrainer  # noqa: F401 - imported before the baseline RSS is read

    base = common.rss_mb()["rss_mb"]
    B = common.DPO["batch_size"]
    model, tok = common.load(size)
    ds = make_trl_dataset(tok, common.preference_pairs(tok, steps * B))

    class Clock(TrainerCallback):
        ends: list[float] = []

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        trainer = trl_trainer(model, tok, ds, precompute, out, [clock])
        # reference model loaded (default) / reference log-probs computed (precomputed)
        init_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        trainer.train()
        fit_s = time.perf_counter() - t1
    e = clock.ends
    assert len(e) == steps, (len(e), steps)
    return {"pairs_per_s": (steps - 1) * B / (e[-1] - e[0]), "fit_s": fit_s, "init_s": init_s,
            "rss_base_mb": base, **common.rss_mb(), "threads": torch.get_num_threads()}


def child_numerics(size: str) -> dict:
    """First batch, same weights and tokens: our response_logps + SigmoidLoss vs TRL's compute_loss.

    The reference is a second model (the policy with perturbed weights), so the loss is not trivially log 2:
    TRL holds it in memory; ours gets its log-probs precomputed with ``score_sequences``."""
    import copy

    import torch
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from cream.method.losses import SigmoidLoss
    from cream.models.scoring import response_logps
    from cream.records import PairRow
    from cream.training.datamodules import PreferenceDataModule

    B = common.DPO["batch_size"]
    policy, tok = common.load(size)
    ref = copy.deepcopy(policy)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    pairs = common.preference_pairs(tok, B)
    common.add_ref_logps(ref, tok, pairs)
    # ours: the collated batch of the pipeline's data module (unshuffled: the pairs in order)
    dm = PreferenceDataModule(tok, [PairRow.from_json(p) for p in pairs], [1.0] * B, batch_size=B,
                              max_length=common.MAX_LENGTH, max_prompt_length=common.MAX_PROMPT_LENGTH, seed=0)
    ours = dm.collate(dm.items)
    policy.train()
    with torch.no_grad():
        lp = response_logps(policy, ours["input_ids"], ours["attention_mask"], ours["response_mask"])
        pc, pr = lp.chunk(2)
        losses, _ = SigmoidLoss(common.DPO["beta"])(pc, pr, ours["ref_logp_chosen"], ours["ref_logp_rejected"],
                                                    ours["weight"])
    # TRL: its collator on the same token ids, then its loss with the reference model in memory
    ds = make_trl_dataset(tok, pairs)
    theirs = DataCollatorForPreference(pad_token_id=tok.pad_token_id, max_length=common.MAX_LENGTH)(list(ds))
    same_tokens = bool(torch.equal(theirs["input_ids"], ours["input_ids"]) and
                       torch.equal(theirs["completion_mask"].bool(), ours["response_mask"]) and
                       torch.equal(theirs["attention_mask"], ours["attention_mask"]))
    with tempfile.TemporaryDirectory() as out:
        trainer = trl_trainer(copy.deepcopy(policy), tok, ds, False, out)
        trainer.ref_model = ref  # the perturbed reference, held in memory
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(ref)
        trainer.model.train()
        with torch.no_grad():
            trl_loss = trainer.compute_loss(trainer.model, theirs).item()
            m = trainer._metrics["train"]
            labels = theirs["input_ids"].masked_fill(theirs["completion_mask"] == 0, -100)
            trl_lp = trainer.model(input_ids=theirs["input_ids"], attention_mask=theirs["attention_mask"],
                                   labels=labels, fused_lm_head=True).log_probs.sum(1)
            trl_ref_lp = ref(input_ids=theirs["input_ids"], attention_mask=theirs["attention_mask"], labels=labels,
                             fused_lm_head=True).log_probs.sum(1)
    ref_ours = torch.cat([ours["ref_logp_chosen"], ours["ref_logp_rejected"]])
    d = {
        "same_tokens": same_tokens,
        "loss_ours": losses.mean().item(), "loss_trl": trl_loss,
        "max_abs_diff_loss": abs(losses.mean().item() - trl_loss),
        "max_abs_diff_policy_logps": (lp - trl_lp).abs().max().item(),
        "max_abs_diff_ref_logps": (ref_ours - trl_ref_lp).abs().max().item(),
        "max_abs_diff_logps_chosen_mean": abs(pc.mean().item() - m["logps/chosen"][-1]),
        "max_abs_diff_logps_rejected_mean": abs(pr.mean().item() - m["logps/rejected"][-1]),
    }
    # log-probs are float32 sums of ~20 terms of magnitude ~100: 1e-5 is compared relative to the value
    # (float32's spacing at 128 is 7.6e-6); the loss (~0.7) absolutely
    scale = max(1.0, lp.abs().max().item(), ref_ours.abs().max().item())
    d["max_rel_diff_logps"] = max(d["max_abs_diff_policy_logps"], d["max_abs_diff_ref_logps"]) / scale
    d["ok"] = same_tokens and d["max_abs_diff_loss"] <= 1e-5 and d["max_rel_diff_logps"] <= 1e-5
    return d


# --------------------------------------------------------------------------- parent

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=[*common.SIZES, common.REAL])
    ap.add_argument("--steps", type=int, default=None,
                    help="optimizer steps per run (default: tiny 20, 20m 10, smollm2 6)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", choices=[*VARIANTS, "numerics"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    steps = a.steps or {"tiny": 20, "20m": 10, "smollm2": 6}[a.size]
    if a.child:
        r = (child_ours(a.size, steps) if a.child == "ours" else child_numerics(a.size) if a.child == "numerics"
             else child_trl(a.size, steps, a.child == "trl_precomputed"))
        print(json.dumps(r))
        return

    model, _ = common.load(a.size)
    print(common.describe(a.size, model), f"| {steps} steps x {common.DPO['batch_size']} pairs, {a.reps} reps",
          flush=True)
    del model
    me = Path(__file__).resolve()
    runs = {v: [] for v in VARIANTS}
    for rep in range(a.reps):
        order = VARIANTS[rep % 3:] + VARIANTS[: rep % 3]  # rotate who goes first
        for v in order:
            r = common.run_child(me, ["--child", v, "--size", a.size, "--steps", str(steps)])
            runs[v].append(r)
            print(f"  rep {rep} {v:<16} {r['pairs_per_s']:8.3f} pairs/s  peak {r['peak_mb']:7.0f} MiB", flush=True)
    num = common.run_child(me, ["--child", "numerics", "--size", a.size])

    med = {v: {k: common.median([r[k] for r in runs[v]]) for k in runs[v][0]} for v in VARIANTS}
    per_rep = lambda b: common.median([o["pairs_per_s"] / t["pairs_per_s"] for o, t in zip(runs["ours"], runs[b])])
    fig = {
        "pairs_per_s": {v: round(med[v]["pairs_per_s"], 2) for v in VARIANTS},
        "speedup_vs_trl_default": round(per_rep("trl_default"), 3),
        "speedup_vs_trl_precomputed": round(per_rep("trl_precomputed"), 3),
        "fit_s": {v: round(med[v]["fit_s"], 2) for v in VARIANTS},
        "ref_logps_once_s": {"ours_score_sequences": round(med["ours"]["ref_precompute_s"], 3),
                             "trl_precompute_in_init": round(med["trl_precomputed"]["init_s"], 3)},
        "peak_rss_mb": {v: round(med[v]["peak_mb"], 1) for v in VARIANTS},
        "peak_minus_import_rss_mb": {v: round(med[v]["peak_mb"] - med[v]["rss_base_mb"], 1) for v in VARIANTS},
        "numerics": num,
        "targets": {"vs_trl_default>=1.3": per_rep("trl_default") >= 1.3,
                    "vs_trl_precomputed>=1.0": per_rep("trl_precomputed") >= 1.0,
                    "numerics<=1e-5": num["ok"]},
        "steps": steps, "batch_size": common.DPO["batch_size"], "reps": a.reps,
    }
    print(f"\nDPO throughput ({a.size}, medians of {a.reps}):")
    for v in VARIANTS:
        print(f"  {v:<16} {med[v]['pairs_per_s']:8.1f} pairs/s   fit {med[v]['fit_s']:6.1f} s"
              f"   peak RSS {med[v]['peak_mb']:7.0f} MiB"
              f" ({med[v]['peak_mb'] - med[v]['rss_base_mb']:+.0f} over imports)")
    print(f"  ours / TRL default     = {fig['speedup_vs_trl_default']:.2f}x (target >= 1.3)")
    print(f"  ours / TRL precomputed = {fig['speedup_vs_trl_precomputed']:.2f}x (target >= 1.0)")
    print(f"  reference log-probs, once: ours {fig['ref_logps_once_s']['ours_score_sequences']:.2f} s "
          f"(score_sequences), TRL {fig['ref_logps_once_s']['trl_precompute_in_init']:.2f} s "
          "(trainer init incl. precompute)")
    print(f"  numerics (first batch): {num}")
    common.emit("dpo_vs_trl", a.size, fig)


if __name__ == "__main__":
    main()
