"""Checks on the composed config, before anything runs: each error names the key and what to do."""
from __future__ import annotations

from omegaconf import DictConfig

from cream.data import custom, oasst, pool
from cream.data.benchmarks import BENCHMARKS, FILES
from cream.errors import ConfigError


def _need(ok: bool, key: str, value, what: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: {what}")


def validate_config(cfg: DictConfig) -> None:
    _need(int(cfg.pipeline.iterations) >= 1, "pipeline.iterations", cfg.pipeline.iterations, "must be >= 1")
    _need(int(cfg.sampling.n) >= 2, "sampling.n", cfg.sampling.n, "must be >= 2: a pair needs at least two responses per prompt")
    _need(float(cfg.sampling.temperature) >= 0, "sampling.temperature", cfg.sampling.temperature, "must be >= 0")
    _need(0 < float(cfg.sampling.top_p) <= 1, "sampling.top_p", cfg.sampling.top_p, "must be in (0, 1]")
    beta = cfg.loss.get("beta")
    _need(beta is None or float(beta) > 0, "loss.beta", beta, "must be > 0")
    _validate_data(cfg)
    _need(int(cfg.model.max_prompt_length) < int(cfg.model.max_length), "model.max_prompt_length",
          cfg.model.max_prompt_length, f"must be below model.max_length={cfg.model.max_length}")
    _need(cfg.pipeline.on_config_change in ("error", "redo"), "pipeline.on_config_change", cfg.pipeline.on_config_change, "must be error or redo")
    for name in list(cfg.data.benchmarks) + list(cfg.eval.benchmarks):
        _need(name in BENCHMARKS, "data.benchmarks", name, f"unknown benchmark; known: {', '.join(BENCHMARKS)}")
    for name in cfg.eval.benchmarks:
        split = cfg.eval.splits.get(name)
        _need(split in FILES[name], f"eval.splits.{name}", split, f"{name} has the splits {', '.join(FILES[name])}")
    bad = set(cfg.eval.modes) - {"generate", "loglik"}
    _need(not bad, "eval.modes", list(cfg.eval.modes), "each mode must be generate or loglik")
    _need(cfg.eval.get("extraction", "lenient") in ("lenient", "strict", "official"), "eval.extraction",
          cfg.eval.get("extraction"), "must be lenient, strict or official")
    skip = bool(cfg.sft.get("skip"))
    for key in ("dpo",) if skip else ("sft", "dpo"):
        _need(float(cfg[key].lr) > 0, f"{key}.lr", cfg[key].lr, "must be > 0")
        _need(int(cfg[key].epochs) >= 1, f"{key}.epochs", cfg[key].epochs, "must be >= 1 (sft.skip=true skips SFT)")
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
    _need(cfg.sampling.get("instruction", "cot") in ("cot", "none"), "sampling.instruction", cfg.sampling.get("instruction"),
          "must be cot (the evaluation's step-by-step instruction) or none (the raw question)")
    # no silent sample data: a real model trained or evaluated on the few shipped records by accident
    if cfg.model.name_or_path is not None and d.dir is None and uses_benchmark_files(cfg) and not d.get("allow_sample"):
        raise ConfigError(
            f"data.dir=None: model.name_or_path={cfg.model.name_or_path!r} is not the tiny default, but data.dir is "
            "unset, so the run would train and evaluate on the small sample shipped in cream/data/sample (a few "
            "hundred records per benchmark). Set data.dir=DIR (a folder laid out like the original releases), "
            "or data.allow_sample=true to use the sample on purpose."
        )
    if d.seed.source == "benchmarks" or d.pool == "per_benchmark":
        _need(int(d.n_seed) >= 1, "data.n_seed", d.n_seed, "must be >= 1: SFT needs labeled examples")
    if d.pool == "per_benchmark":
        _need(d.n_prompts is not None and int(d.n_prompts) >= 1, "data.n_prompts", d.n_prompts,
              "must be >= 1: the prompt pool is empty (null, the whole part, is for data.pool=paper or file)")
    else:
        _need(d.n_prompts is None or int(d.n_prompts) >= 1, "data.n_prompts", d.n_prompts, "must be >= 1 or null (the whole part)")
    _need(d.seed.source != "file" or d.seed.path is not None, "data.seed.path", d.seed.path,
          "data.seed.source=file needs a JSONL file or datasets folder of {\"messages\": [...]} records")
    _need(d.seed.source != "oasst" or d.seed.path is not None or d.dir is not None, "data.seed.path", d.seed.path,
          "data.seed.source=oasst needs the OASST1 release: data.seed.path=FILE_OR_FOLDER, or data.dir=DIR with it in DIR/oasst1/")
    _need(d.seed.max_turns is None or int(d.seed.max_turns) >= 1, "data.seed.max_turns", d.seed.max_turns, "must be >= 1 or null")
    _need(d.seed.limit is None or int(d.seed.limit) >= 1, "data.seed.limit", d.seed.limit, "must be >= 1 or null")
    _need(d.pool != "file" or d.prompts is not None, "data.prompts", d.prompts,
          "data.pool=file needs a JSONL file or datasets folder of {\"prompt\": ...} or {\"messages\": [...]} records")
    _need(len(cfg.eval.benchmarks) + len(d.get("eval_files") or {}) > 0, "eval.benchmarks", list(cfg.eval.benchmarks),
          "nothing to evaluate: name a benchmark, or your own sets with data.eval_files={NAME: FILE.jsonl}")
    for name in d.get("eval_files") or {}:
        _need(name not in cfg.eval.benchmarks, f"data.eval_files.{name}", d.eval_files[name],
              f"{name} is also in eval.benchmarks; give your eval set another name")
        _need(name not in BENCHMARKS, f"data.eval_files.{name}", d.eval_files[name],
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
    for name, path in (d.get("eval_files") or {}).items():
        custom.load_eval_file(str(name), path)
