"""Checks on the composed config, before anything runs: each error names the key and what to do."""
from __future__ import annotations

from omegaconf import DictConfig

from cream.errors import CreamError


class ConfigError(CreamError, ValueError):
    pass


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
    _need(int(cfg.data.n_seed) >= 1, "data.n_seed", cfg.data.n_seed, "must be >= 1: SFT needs labeled examples")
    _need(int(cfg.data.n_prompts) >= 1, "data.n_prompts", cfg.data.n_prompts, "must be >= 1: the prompt pool is empty")
    _need(int(cfg.model.max_prompt_length) < int(cfg.model.max_length), "model.max_prompt_length",
          cfg.model.max_prompt_length, f"must be below model.max_length={cfg.model.max_length}")
    _need(cfg.pipeline.on_config_change in ("error", "redo"), "pipeline.on_config_change", cfg.pipeline.on_config_change, "must be error or redo")
    from cream.data.benchmarks import BENCHMARKS, FILES

    for name in list(cfg.data.benchmarks) + list(cfg.eval.benchmarks):
        _need(name in BENCHMARKS, "data.benchmarks", name, f"unknown benchmark; known: {', '.join(BENCHMARKS)}")
    for name in cfg.eval.benchmarks:
        split = cfg.eval.splits.get(name)
        _need(split in FILES[name], f"eval.splits.{name}", split, f"{name} has the splits {', '.join(FILES[name])}")
    bad = set(cfg.eval.modes) - {"generate", "loglik"}
    _need(not bad, "eval.modes", list(cfg.eval.modes), "each mode must be generate or loglik")
    for key in ("sft", "dpo"):
        _need(float(cfg[key].lr) > 0, f"{key}.lr", cfg[key].lr, "must be > 0")
        _need(int(cfg[key].epochs) >= 1, f"{key}.epochs", cfg[key].epochs, "must be >= 1")
