"""The plan of a run before it runs (``cream-train ... plan=true``): sizes, steps and per-GPU memory.

Nothing is loaded but the model's config (``config.json`` of a local folder, the architecture table
below for the paper's hub models, ``model.tiny`` for the default); parameters are counted on a model
built on the meta device (no memory), LoRA adapters included.

Symbols: P parameters, T trainable parameters (P, or the LoRA adapters), W = devices x num_nodes
ranks; L layers, h hidden, i intermediate, V vocabulary, H attention heads; b_p bytes of a trained
parameter (4 for the float32 masters of ``*-mixed`` and ``32-true``, 2 for ``bf16-true``), b_c bytes of the
compute dtype (2 under ``bf16-*``/``16-*``, else 4), b_r bytes of the residual stream (= b_p; the model
dtype under LoRA).  Per GPU:

    weights      P b_p / S_w              S_w = W under FSDP FULL_SHARD/HYBRID_SHARD, else 1
                 LoRA: (P - T) b_model + 4 T (frozen base in model.dtype, float32 adapters)
    compute      *-mixed without FSDP: P b_c, autocast's low-precision copy of every weight (kept for
                 the backward); FSDP: the gathered units, root (non-layer parameters) + 2 decoder layers
                 (one prefetched) in b_c
    gradients    T b_p / S_g              S_g = W under any FSDP sharding but NO_SHARD, else 1;
                 x 2 under DDP (its all-reduce buckets are a second copy: gradient_as_bucket_view off)
    optimizer    2 T b_p / S_g            AdamW's exp_avg and exp_avg_sq, in the parameter's dtype
    activations  for a micro-batch of R rows of s tokens (N of them scored by the LM head, at most N_c at once):
                 L R s [4h b_r + (6h + 4i + 3h m + s) b_c + 4H] + 2 R s h b_r + min(N, N_c) 12 V + N h b_c
                 - per layer and token: each RMSNorm keeps its float input and normalized output (2h,
                   twice); the attention keeps q, k, v after RoPE and GQA's repeat (3h: with a padding
                   mask transformers repeats the KV heads), its output (h), the projections' input (h) and
                   the MLP's input (h); the MLP keeps gate, SiLU(gate), up and their product (4i); the
                   padding mask as an additive bias (s) and the softmax's log-sum-exp (H, float32);
                   m = 1 under mixed precision (autocast casts the float residual separately for q, k, v
                   and for gate, up: 3 more copies), else 0 (counted on the saved tensors of a real step);
                 - the LM head: per scored token the float32 log-softmax output, its gradient and the
                   logits' gradient at the start of the backward (12 V bytes) and the head's input. Both
                   stages' heads run on chunks of N_c = 2^26 / V positions, each recomputed in the backward
                   (``cream.models.scoring.LOGIT_CHUNK_ELEMENTS``; SFT only past N_c positions in the batch).
                 With activation checkpointing (``trainer.cream.activation_checkpointing``) the layers keep only
                 their input, L R s h b_r, plus one layer's activations recomputed in the backward.
    peak         weights + compute + optimizer + max(gradients, activations + V h b_p)
                 the backward frees activations as it makes gradients, so both are never at full size
                 at once; the LM head's (the embedding's, when tied) gradient V h comes first.

Rows and tokens: SFT R = sft.batch_size rows of s = model.max_length tokens, all scored; DPO R = 2 x
dpo.batch_size (chosen and rejected) of s = min(max_length, max_prompt_length + max_new_tokens + 1),
N = R x (max_new_tokens + 1) response tokens.  These are upper bounds (every row at full length).
Not counted: the CUDA context and allocator slack (``overhead_gb``, 2 GB by default), the data.

Sampling (HF generate): P b_model + the KV cache of sampling.batch_size x n sequences of
max_prompt_length + max_new_tokens tokens, 2 L kv_dim b_model bytes per token (kv_dim = KV heads x head dim).

Checked against the measured peak memory of DPO and SFT steps on CPU (experiments/perf/plan_memory.py,
tiny, 20m and SmolLM2-135M): within 2.5% without activation checkpointing, -6% to +34% with it (the head's
and the recomputed layer's memory are added, though the backward holds them one after the other).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cream.data.pool import prompt_slice, seed_set
from cream.distributed import trainer_world_size
from cream.errors import PlanError
from cream.models.scoring import logit_chunk
from cream.training import lora as lora_mod
from cream.training.trainer import training_dtype

GB = 1e9


@dataclass(frozen=True)
class Arch:
    """The numbers of a decoder-only (Llama-like) architecture that the estimate needs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    tied: bool
    head_dim: int | None = None

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * (self.head_dim or self.hidden_size // self.num_heads)

    def llama_config(self):
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=self.vocab_size, hidden_size=self.hidden_size,
                           intermediate_size=self.intermediate_size, num_hidden_layers=self.num_layers,
                           num_attention_heads=self.num_heads,
                           num_key_value_heads=self.num_kv_heads, tie_word_embeddings=self.tied,
                           head_dim=self.head_dim or self.hidden_size // self.num_heads)


# The paper's models (conf/model/llama*.yaml), from their config.json on the hub: the plan runs offline.
ARCHS = {
    "meta-llama/Llama-2-7b-chat-hf": Arch(32000, 4096, 11008, 32, 32, 32, tied=False),
    "meta-llama/Llama-2-7b-hf": Arch(32000, 4096, 11008, 32, 32, 32, tied=False),
    "meta-llama/Meta-Llama-3-8B-Instruct": Arch(128256, 4096, 14336, 32, 32, 8, tied=False),
    "meta-llama/Meta-Llama-3-8B": Arch(128256, 4096, 14336, 32, 32, 8, tied=False),
}


def arch_of(config) -> Arch:
    """An :class:`Arch` from a transformers config (Llama, Mistral, Qwen2, SmolLM, ... field names)."""
    try:
        return Arch(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                    intermediate_size=config.intermediate_size, num_layers=config.num_hidden_layers,
                    num_heads=config.num_attention_heads,
                    num_kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
                    tied=bool(getattr(config, "tie_word_embeddings", False)),
                    head_dim=getattr(config, "head_dim", None))
    except AttributeError as e:
        raise PlanError(f"the plan needs a decoder-only (Llama-like) config: {e}") from e


def model_arch(cfg: DictConfig) -> tuple[Arch, str, object]:
    """(architecture, where it came from, transformers config) of ``cfg.model``, without loading weights."""
    m = cfg.model
    if m.name_or_path is None:
        t = m.tiny
        a = Arch(t.vocab_size, t.hidden_size, t.intermediate_size, t.num_layers, t.num_heads, t.num_heads, tied=True)
        return a, "model.tiny", a.llama_config()
    name = str(m.name_or_path)
    if (Path(name) / "config.json").is_file():
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(name, trust_remote_code=bool(m.trust_remote_code))
        return arch_of(config), f"{name}/config.json", config
    if name in ARCHS:
        return ARCHS[name], "cream.training.plan.ARCHS", ARCHS[name].llama_config()
    raise PlanError(f"model.name_or_path={name!r}: no local config.json and not in cream.training.plan.ARCHS "
                    f"({', '.join(ARCHS)}); point it at a local folder with config.json")


def count_params(config, lora: dict | None = None) -> tuple[int, int]:
    """(all parameters, trainable parameters) of the model of a transformers ``config`` (or an :class:`Arch`),
    built on the meta device (LoRA adapters applied)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config.llama_config() if isinstance(config, Arch) else config)
    if lora is not None:
        model = lora_mod.apply(model, lora)
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique), sum(p.numel() for p in unique if p.requires_grad)


@dataclass(frozen=True)
class Layout:
    """How a training stage holds the model: strategy, ranks and dtypes (bytes)."""

    strategy: str           # single | ddp | fsdp
    sharding: str = "FULL_SHARD"
    world: int = 1
    param_bytes: int = 4    # b_p
    compute_bytes: int = 4  # b_c
    model_bytes: int = 4    # model.dtype: the frozen base under LoRA, sampling
    lora: bool = False
    activation_checkpointing: bool = False

    @property
    def mixed(self) -> bool:
        return self.param_bytes != self.compute_bytes and not self.lora

    @property
    def weight_shards(self) -> int:
        return self.world if self.strategy == "fsdp" and self.sharding in ("FULL_SHARD", "HYBRID_SHARD") else 1

    @property
    def grad_shards(self) -> int:
        return self.world if self.strategy == "fsdp" and self.sharding != "NO_SHARD" else 1


def layer_activation_bytes(a: Arch, lay: Layout, rows: int, tokens: int) -> float:
    """One decoder layer's saved activations for ``tokens`` tokens in ``rows`` rows (module docstring)."""
    h, i = a.hidden_size, a.intermediate_size
    b_r = lay.model_bytes if lay.lora else lay.param_bytes
    seq = tokens // rows if rows else tokens
    return tokens * (4 * h * b_r + (6 * h + 4 * i + 3 * h * lay.mixed + seq) * lay.compute_bytes + 4 * a.num_heads)


def training_memory(a: Arch, params: int, trainable: int, lay: Layout, rows: int, seq: int,
                    scored: int, at_once: int | None = None) -> dict[str, float]:
    """Per-GPU bytes of one training step (module docstring): each component and the peak; ``at_once``: the
    scored positions whose logits exist at one time (N_c; None: all of them)."""
    h, V, L = a.hidden_size, a.vocab_size, a.num_layers
    tokens = rows * seq
    b_r = lay.model_bytes if lay.lora else lay.param_bytes
    if lay.lora:
        weights = (params - trainable) * lay.model_bytes + 4 * trainable
        train_bytes = 4
    else:
        weights = params * lay.param_bytes / lay.weight_shards
        train_bytes = lay.param_bytes
    layer_params = (params - (V * h * (1 if a.tied else 2) + h)) / L
    if lay.strategy == "fsdp":
        compute = (params - L * layer_params + 2 * layer_params) * lay.compute_bytes
    else:
        compute = params * lay.compute_bytes if lay.mixed else 0.0
    grads = trainable * train_bytes / lay.grad_shards * (2 if lay.strategy == "ddp" else 1)
    optimizer = 2 * trainable * train_bytes / lay.grad_shards
    head = min(scored, at_once or scored) * 12 * V + scored * h * lay.compute_bytes + 2 * tokens * h * b_r
    one_layer = layer_activation_bytes(a, lay, rows, tokens)
    full = L * one_layer + head
    ckpt = L * tokens * h * b_r + one_layer + head
    acts = ckpt if lay.activation_checkpointing else full
    head_grad = 0 if lay.lora else V * h * train_bytes / lay.grad_shards
    peak = weights + compute + optimizer + max(grads, acts + head_grad)
    return {"weights": weights, "compute": compute, "gradients": grads, "optimizer": optimizer,
            "activations": full, "activations_ckpt": ckpt, "peak": peak}


def layout(cfg: DictConfig) -> Layout:
    """The training layout of the composed config."""
    t = cfg.trainer
    strategy = t.strategy
    sharding = "FULL_SHARD"
    if isinstance(strategy, (DictConfig, dict)):
        target = str(strategy.get("_target_", ""))
        kind = "fsdp" if "fsdp" in target.lower() else "ddp" if "ddp" in target.lower() else "single"
        sharding = str(strategy.get("sharding_strategy", "FULL_SHARD"))
    else:
        kind = ("fsdp" if strategy and "fsdp" in str(strategy)
                else "ddp" if strategy and "ddp" in str(strategy) else "single")
    world = trainer_world_size(t)
    if kind == "ddp" and world == 1:
        kind = "single"
    precision = t.precision
    size = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
    return Layout(strategy=kind, sharding=sharding, world=world, param_bytes=size[training_dtype(cfg)],
                  compute_bytes=4 if precision.startswith("32") else 2, model_bytes=size[cfg.model.dtype],
                  lora=cfg.model.lora is not None, activation_checkpointing=t.cream.activation_checkpointing)


def _steps(n: int, batch_size: int, accumulate: int, world: int, epochs: int) -> int:
    """Optimizer steps as the data modules count them (cream.training.datamodules ``steps``); None: size unknown."""
    if n is None:
        return None
    return epochs * math.ceil(math.ceil(math.ceil(n / world) / batch_size) / accumulate)


def data_sizes(cfg: DictConfig) -> dict:
    """Seed examples and prompts per iteration: counted from the data when it can be read, else from the config."""
    T = cfg.pipeline.iterations
    try:
        return {"seed": len(seed_set(cfg)), "prompts": [len(prompt_slice(cfg, t)) for t in range(1, T + 1)],
                "source": "counted"}
    except Exception as e:  # noqa: BLE001 - any reason the data cannot be read: fall back to the config's sizes
        d = cfg.data
        k = len(d.benchmarks)
        per_benchmark = d.pool == "per_benchmark"
        seed = d.n_seed * k if d.seed.source == "benchmarks" else None
        prompts = d.n_prompts * k if per_benchmark and d.n_prompts is not None else None
        return {"seed": seed, "prompts": [prompts] * T,
                "source": f"from the config, None = unknown (data not read: {str(e).splitlines()[0][:160]})"}


@dataclass
class Plan:
    arch: Arch
    source: str
    params: int
    trainable: int
    layout: Layout
    gpu_memory_gb: float | None
    overhead_gb: float
    stages: dict = field(default_factory=dict)      # sft / dpo: rows, seq, scored, memory dict
    steps: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def peak_gb(self) -> float:
        return max(s["memory"]["peak"] for s in self.stages.values()) / GB + self.overhead_gb

    def fits(self) -> bool | None:
        if self.gpu_memory_gb is None:
            return None
        return (self.peak_gb() <= float(self.gpu_memory_gb)
                and self.sampling["bytes"] / GB + self.overhead_gb <= float(self.gpu_memory_gb))


def make_plan(cfg: DictConfig, overhead_gb: float | None = None) -> Plan:
    arch, source, config = model_arch(cfg)
    lora = cfg.model.lora
    params, trainable = count_params(config, OmegaConf.to_container(lora, resolve=True) if lora is not None else None)
    lay = layout(cfg)
    if str(cfg.trainer.devices) in ("auto", "-1"):
        plan_notes = [f"trainer.devices={cfg.trainer.devices}: counted as {lay.world} rank(s) on this machine; "
                      "set trainer.devices=<GPUs per node> to plan for the cluster"]
    else:
        plan_notes = []
    gpu = cfg.trainer.cream.gpu_memory_gb
    on_gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto")
    plan = Plan(arch, source, params, trainable, lay, gpu_memory_gb=gpu,
                overhead_gb=(2.0 if on_gpu else 0.0) if overhead_gb is None else overhead_gb, notes=plan_notes)
    max_len, max_prompt, new = cfg.model.max_length, cfg.model.max_prompt_length, cfg.sampling.max_new_tokens
    dpo_seq = min(max_len, max_prompt + new + 1)
    dpo_pass = min(cfg.dpo.get("micro_batch_size") or cfg.dpo.batch_size, cfg.dpo.batch_size)  # pairs per pass
    for name, rows, seq, scored in (("sft", cfg.sft.batch_size, max_len, cfg.sft.batch_size * max_len),
                                    ("dpo", 2 * dpo_pass, dpo_seq, 2 * dpo_pass * min(new + 1, dpo_seq))):
        at_once = logit_chunk(arch.vocab_size)  # both stages' heads run on chunks of positions past this many
        plan.stages[name] = {"rows": rows, "seq": seq, "scored": scored,
                             "memory": training_memory(arch, params, trainable, lay, rows, seq, scored, at_once)}
    plan.data = data_sizes(cfg)
    acc = cfg.trainer.accumulate_grad_batches
    plan.steps = {"global_batch": {k: cfg[k].batch_size * acc * lay.world for k in ("sft", "dpo")},
                  "sft": _steps(plan.data["seed"], cfg.sft.batch_size, acc, lay.world, cfg.sft.epochs),
                  "dpo": [_steps(n, cfg.dpo.batch_size, acc, lay.world, cfg.dpo.epochs) for n in plan.data["prompts"]]}
    n, bs = cfg.sampling.n, cfg.sampling.batch_size
    kv = 2 * arch.num_layers * arch.kv_dim * lay.model_bytes * bs * n * (max_prompt + new)
    plan.sampling = {"tokens": [None if p is None else p * n * new for p in plan.data["prompts"]], "kv_cache": kv,
                     "bytes": params * lay.model_bytes + kv}
    return plan


def _gb(x: float) -> str:
    return f"{x / GB:7.2f} GB"


def render(plan: Plan) -> str:
    a, lay = plan.arch, plan.layout
    how = {"single": "one device", "ddp": f"DDP on {lay.world} ranks",
           "fsdp": f"FSDP {lay.sharding} on {lay.world} ranks"}[lay.strategy]
    masters = {4: "float32", 2: "bf16"}[lay.param_bytes]
    weights = ("LoRA adapters in float32, base in " + {4: "float32", 2: "bf16"}[lay.model_bytes] if lay.lora
               else masters + " trained weights")
    lines = [
        f"model        {plan.source}: hidden {a.hidden_size}, {a.num_layers} layers, {a.num_heads} heads "
        f"({a.num_kv_heads} KV), intermediate {a.intermediate_size}, vocab {a.vocab_size}"
        f"{', tied embeddings' if a.tied else ''}",
        f"parameters   {plan.params / 1e9:.3f} B ({plan.params:,}); trainable {plan.trainable:,}"
        + (" (LoRA)" if lay.lora else ""),
        f"layout       {how}; {weights}, compute in {'float32' if lay.compute_bytes == 4 else '16-bit'}; "
        f"activation checkpointing {'on' if lay.activation_checkpointing else 'off'}",
        f"global batch sft {plan.steps['global_batch']['sft']}, dpo {plan.steps['global_batch']['dpo']} "
        "(batch_size x accumulate_grad_batches x ranks)",
        "",
        "per GPU, one training step (upper bound: every row at full length)        SFT          DPO",
    ]
    s, d = plan.stages["sft"], plan.stages["dpo"]
    lines.append(f"  micro-batch (rows x tokens, scored tokens)        {s['rows']:>5} x {s['seq']:<5} {s['scored']:>6}"
                 f"   {d['rows']:>4} x {d['seq']:<5} {d['scored']:>6}")
    for key, label in (("weights", "weights"), ("compute", "compute copies (autocast / FSDP gathers)"),
                       ("gradients", "gradients"), ("optimizer", "optimizer state (AdamW)"),
                       ("activations", "activations, no checkpointing"),
                       ("activations_ckpt", "activations, checkpointing")):
        lines.append(f"  {label:<48} {_gb(s['memory'][key])}   {_gb(d['memory'][key])}")
    lines.append(f"  {'peak: weights+compute+optimizer+max(grads, acts)':<48} {_gb(s['memory']['peak'])}   "
                 f"{_gb(d['memory']['peak'])}")
    lines.append(f"  {'+ CUDA context, allocator slack':<48} {plan.overhead_gb:7.2f} GB")
    lines += ["",
              f"sampling     weights {_gb(plan.params * lay.model_bytes).strip()} + KV cache "
              f"{_gb(plan.sampling['kv_cache']).strip()} per GPU",
              f"data         {plan.data['seed']} seed examples; prompts per iteration {plan.data['prompts']} "
              f"({plan.data['source']})",
              f"steps        SFT {plan.steps['sft']} optimizer steps; DPO per iteration at most {plan.steps['dpo']}",
              f"tokens       sampled per iteration at most {plan.sampling['tokens']}"]
    lines += [f"note         {n}" for n in plan.notes]
    fits = plan.fits()
    train, sample = plan.peak_gb(), plan.sampling["bytes"] / GB + plan.overhead_gb
    peaks = f"training {train:.1f} GB, sampling {sample:.1f} GB per GPU (with {plan.overhead_gb:g} GB of overhead)"
    if fits is None:
        lines.append(f"fits         ? {peaks} (set trainer.cream.gpu_memory_gb to check)")
    else:
        verdict = "yes" if fits else "NO"
        lines.append(f"fits         {verdict}: {peaks}; {float(plan.gpu_memory_gb):g} GB per GPU "
                     "(trainer.cream.gpu_memory_gb)")
    return "\n".join(lines)
