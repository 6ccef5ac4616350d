"""The labeled seed set, the unlabeled prompt pool (one disjoint slice per iteration), the eval sets."""
from __future__ import annotations

import random

from omegaconf import DictConfig

from cream.data.benchmarks import Example, load_benchmark
from cream.errors import CreamError


class PoolError(CreamError, ValueError):
    pass


def _train(cfg: DictConfig, name: str) -> list[Example]:
    examples = load_benchmark(name, "train", data_dir=cfg.data.dir, source=cfg.data.source)
    random.Random(f"{cfg.seed}-{name}").shuffle(examples)
    need = int(cfg.data.n_seed) + int(cfg.data.n_prompts) * int(cfg.pipeline.iterations)
    if len(examples) < need:
        raise PoolError(
            f"data: {name} train has {len(examples)} examples, but data.n_seed={cfg.data.n_seed} + "
            f"data.n_prompts={cfg.data.n_prompts} x pipeline.iterations={cfg.pipeline.iterations} = {need} are needed; "
            "lower them or point data.dir at the full release files"
        )
    return examples


def seed_set(cfg: DictConfig) -> list[Example]:
    """The first ``data.n_seed`` shuffled train examples of each benchmark (with gold answers)."""
    return [ex for name in cfg.data.benchmarks for ex in _train(cfg, name)[: int(cfg.data.n_seed)]]


def prompt_slice(cfg: DictConfig, t: int) -> list[Example]:
    """Slice t (1-based) of the unlabeled pool: disjoint from the seed set and from the other slices."""
    n_seed, n = int(cfg.data.n_seed), int(cfg.data.n_prompts)
    if n < 1:
        raise PoolError(f"data.n_prompts={n}: the prompt pool is empty; it must be >= 1")
    start = n_seed + (t - 1) * n
    return [ex for name in cfg.data.benchmarks for ex in _train(cfg, name)[start: start + n]]


def eval_sets(cfg: DictConfig) -> dict[str, list[Example]]:
    """The first ``eval.limit`` examples of each benchmark's eval split (file order: a fixed subset)."""
    out = {}
    for name in cfg.eval.benchmarks:
        split = cfg.eval.splits[name]
        examples = load_benchmark(name, split, data_dir=cfg.data.dir, source=cfg.data.source)
        out[name] = examples if cfg.eval.limit is None else examples[: int(cfg.eval.limit)]
    return out
