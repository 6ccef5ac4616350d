"""The plan's memory estimate (cream/training/plan.py) against the measured peak of real training steps on CPU.

For each model and stage, a fresh interpreter loads the model, warms up (one small forward/backward),
notes its resident memory, resets the peak (``/proc/self/clear_refs``), then runs two AdamW steps of the
stage's own training step (``DPOModule`` / ``SFTModule``) on a micro-batch of R rows x s tokens (one row 8
tokens shorter, so the padding mask is used as in the pipeline).  Measured: the peak resident memory above
the loaded model (VmHWM - VmRSS before the steps).  Estimated: the plan's peak minus the weights, for the
same R, s and scored tokens on one device (``32-true``, or ``bf16-mixed`` with autocast on CPU).

The children run with ``MALLOC_MMAP_THRESHOLD_=65536``: glibc then serves every block above 64 KiB with
mmap and returns it on free, so the resident peak follows the live tensors (as a GPU's
``max_memory_allocated`` does) instead of heap fragmentation; ``--default-malloc`` measures without it.

    python experiments/perf/plan_memory.py                      # tiny and 20m (built), SmolLM2 if present
    python experiments/perf/plan_memory.py --smollm /work/models/smollm2-135m-instruct
    python experiments/perf/plan_memory.py --sizes smollm2-135m --case dpo=16x641x256,sft=8x768 \
        --precisions 32-true,bf16-mixed          # the SmolLM2 miniature's worst case (max_length 768)

Each row also gives the second step's wall time (``step_s``): the first allocates AdamW's state.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

CASES = {  # model -> (rows, seq, response tokens per row) per stage: modest on CPU
    "tiny": {"dpo": (32, 256, 64), "sft": (16, 256, None)},
    "20m": {"dpo": (32, 256, 64), "sft": (16, 256, None)},
    "smollm2-135m": {"dpo": (8, 256, 64), "sft": (8, 256, None)},
}


def _status() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def child(model_dir: str, stage: str, rows: int, seq: int, resp: int | None, precision: str, ckpt: bool) -> dict:
    import torch

    from cream.method.losses import SigmoidLoss
    from cream.models.loading import load_model
    from cream.training.dpo_module import DPOModule
    from cream.training.optim import adamw_cosine
    from cream.training.sft_module import SFTModule

    torch.manual_seed(0)
    model = load_model(model_dir).train()
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    V = model.config.vocab_size

    def batch(r: int, s: int, n_resp: int | None) -> dict:
        ids = torch.randint(4, V, (r, s))
        att = torch.ones(r, s, dtype=torch.long)
        att[-1, -8:] = 0  # one shorter row: the padding mask path, as in the pipeline
        ids[-1, -8:] = 3
        if stage == "sft":
            labels = ids.masked_fill(att == 0, -100)
            return {"input_ids": ids, "attention_mask": att, "labels": labels}
        resp_mask = torch.zeros(r, s, dtype=torch.bool)
        resp_mask[:, s - n_resp:] = True
        resp_mask &= att.bool()
        return {"input_ids": ids, "attention_mask": att, "response_mask": resp_mask, "weight": torch.ones(r // 2),
                "ref_logp_chosen": torch.zeros(r // 2), "ref_logp_rejected": torch.zeros(r // 2)}

    module = (DPOModule(model, SigmoidLoss(0.1), lr=1e-5) if stage == "dpo" else SFTModule(model, lr=1e-5))
    module.log = lambda *a, **k: None
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")

    def step(b, opt=None):
        with autocast:
            loss = module.training_step(b, 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if opt is not None:
            opt.step()
        model.zero_grad(set_to_none=True)

    step(batch(2, 16, 4 if resp else None))  # warm-up: kernels, thread pools
    gc.collect()
    before = _status()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    opt = adamw_cosine(model, 1e-5, 0.01, 0.0, 10)["optimizer"]
    b = batch(rows, seq, resp)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        step(b, opt)
        times.append(time.perf_counter() - t0)
    return {"measured": _status()["VmHWM"] - before, "step_s": times[-1]}


def estimate(model_dir: str, stage: str, rows: int, seq: int, resp: int | None, precision: str, ckpt: bool) -> dict:
    from transformers import AutoConfig

    from cream.training.plan import Layout, arch_of, count_params, training_memory

    config = AutoConfig.from_pretrained(model_dir)
    arch = arch_of(config)
    params, trainable = count_params(config)
    lay = Layout("single", param_bytes=4, compute_bytes=4 if precision == "32-true" else 2, model_bytes=4,
                 activation_checkpointing=ckpt)
    scored = rows * seq if stage == "sft" else rows * resp
    from cream.models.scoring import logit_chunk

    mem = training_memory(arch, params, trainable, lay, rows, seq, scored,
                          logit_chunk(arch.vocab_size))
    return {"params": params, "estimated": mem["peak"] - mem["weights"], "weights": mem["weights"],
            "parts": {k: round(v / 2**20, 1) for k, v in mem.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=7)
    ap.add_argument("--smollm", default="/work/models/smollm2-135m-instruct")
    ap.add_argument("--sizes", default="tiny,20m,smollm2-135m")
    ap.add_argument("--precisions", default="32-true")
    ap.add_argument("--stages", default="dpo,sft")
    ap.add_argument("--case", help="stage=ROWSxSEQ[xRESPONSE],...: these shapes instead of CASES' (every size)")
    ap.add_argument("--reestimate", help="a JSON line printed by an earlier run: recompute only the estimates")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's dynamic mmap threshold on")
    a = ap.parse_args()
    if not a.default_malloc:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # inherited by the children (common.run_child)
    if a.reestimate:
        old = json.loads(Path(a.reestimate).read_text().strip().splitlines()[-1])
        rows_out = []
        for r in old["rows"]:
            d = str(common.model_dir(r["model"])) if r["model"] in common.SIZES else a.smollm
            resp = CASES[r["model"]][r["stage"]][2]
            e = estimate(d, r["stage"], r["rows"], r["seq"], resp, r["precision"], r["ckpt"])
            measured = r["measured_mib"] * 2**20
            rows_out.append(dict(r, estimated_mib=round(e["estimated"] / 2**20, 1), parts_mib=e["parts"],
                                 error=round((e["estimated"] - measured) / measured, 3)))
        report(rows_out)
        common.emit("plan_memory", "all", {"rows": rows_out})
        return
    if a.child:
        d, stage, rows, seq, resp, precision, ckpt = a.child
        print(json.dumps(child(d, stage, int(rows), int(seq), None if resp == "-" else int(resp), precision,
                               ckpt == "1")))
        return
    cases = {k: dict(v) for k, v in CASES.items()}
    for item in (a.case.split(",") if a.case else []):
        stage, shape = item.split("=")
        dims = [int(x) for x in shape.split("x")]
        for size in cases:
            cases[size][stage] = (dims[0], dims[1], dims[2] if len(dims) > 2 else None)
    rows_out = []
    for size in a.sizes.split(","):
        d = str(common.model_dir(size)) if size in common.SIZES else a.smollm
        if not (Path(d) / "config.json").exists():
            print(f"skip {size}: no {d}", file=sys.stderr)
            continue
        for stage, (rows, seq, resp) in cases[size].items():
            if stage not in a.stages.split(","):
                continue
            for precision in a.precisions.split(","):
                for ckpt in (False, True):
                    args = [d, stage, str(rows), str(seq), "-" if resp is None else str(resp), precision,
                            "1" if ckpt else "0"]
                    m = common.run_child(Path(__file__), ["--child", *args])
                    e = estimate(d, stage, rows, seq, resp, precision, ckpt)
                    err = (e["estimated"] - m["measured"]) / m["measured"]
                    row = {"model": size, "params": e["params"], "stage": stage, "rows": rows, "seq": seq,
                           "precision": precision, "ckpt": ckpt, "measured_mib": round(m["measured"] / 2**20, 1),
                           "estimated_mib": round(e["estimated"] / 2**20, 1), "error": round(err, 3),
                           "parts_mib": e["parts"], "step_s": round(m["step_s"], 2)}
                    rows_out.append(row)
                    report([row])
                    gc.collect()
    common.emit("plan_memory", "all", {"rows": rows_out})


def report(rows: list[dict]) -> None:
    for r in rows:
        print(f"{r['model']:>13} {r['stage']} {r['rows']:>2}x{r['seq']} {r['precision']:<10} ckpt={int(r['ckpt'])}"
              f"  measured {r['measured_mib']:8.1f} MiB  estimated {r['estimated_mib']:8.1f} MiB"
              f"  error {100 * r['error']:+6.1f}%  step {r.get('step_s', float('nan')):.1f} s", flush=True)


if __name__ == "__main__":
    main()
