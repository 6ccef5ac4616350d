"""The seed set D_S, the unlabeled prompt pool D_U (one disjoint part per iteration), the eval sets.

Seed set (``data.seed.source``):
    benchmarks  the first ``data.n_seed`` shuffled train examples of each benchmark, with gold answers
                (the offline default; not the paper's)
    oasst       OASST1's top-ranked English paths (``cream.data.oasst``; the paper's D_S)
    file        your conversations (``cream.data.custom``)

Prompt pool (``data.pool``):
    per_benchmark  iteration t takes, from each benchmark's shuffled train split, the ``data.n_prompts``
                   examples after the seed examples and the earlier iterations' slices
    paper          D_U = the first user turn of every seed conversation (source oasst or file) + every
                   train question of ``data.benchmarks`` (labels never shown), shuffled with the seed and cut
                   into T contiguous parts of sizes differing by at most one (the first n mod T parts one
                   longer); iteration t takes part t, its first ``data.n_prompts`` (null: all of it)
    file           the prompts of ``data.prompts``, shuffled and cut the same way
"""
from __future__ import annotations

import random
from pathlib import Path

from omegaconf import DictConfig

from cream.data.benchmarks import Example, load_benchmark
from cream.data.custom import Prompt, load_conversations, load_eval_file, load_prompts
from cream.data.oasst import load_oasst
from cream.errors import PoolError


def _train(cfg: DictConfig, name: str, need: int | None = None) -> list[Example]:
    examples = load_benchmark(name, "train", data_dir=cfg.data.dir, source=cfg.data.source)
    random.Random(f"{cfg.seed}-{name}").shuffle(examples)
    need = cfg.data.n_seed + cfg.data.n_prompts * cfg.pipeline.iterations if need is None else need
    if len(examples) < need:
        raise PoolError(
            f"data: {name} train has {len(examples)} examples, but data.n_seed={cfg.data.n_seed} + "
            f"data.n_prompts={cfg.data.n_prompts} x pipeline.iterations={cfg.pipeline.iterations} = {need} are needed; "
            "lower them or point data.dir at the full release files"
        )
    return examples


def seed_set(cfg: DictConfig) -> list[Example]:
    """The first ``data.n_seed`` shuffled train examples of each benchmark (with gold answers)."""
    n_seed = cfg.data.n_seed
    need = n_seed if cfg.data.pool != "per_benchmark" else None
    return [ex for name in cfg.data.benchmarks for ex in _train(cfg, name, need)[:n_seed]]


def oasst_path(cfg: DictConfig) -> Path:
    """``data.seed.path``, or ``<data.dir>/oasst1`` when it is null."""
    s = cfg.data.seed
    if s.path is not None:
        return Path(s.path)
    if cfg.data.dir is None:
        raise PoolError("data.seed.source=oasst needs the OASST1 release: set data.seed.path=FILE_OR_FOLDER, or "
                        "data.dir=DIR with the release in DIR/oasst1/ (see the README's 'Data' section)")
    return Path(cfg.data.dir) / "oasst1"


def seed_conversations(cfg: DictConfig) -> list[dict]:
    """The seed set as conversations ``{"id", "messages"}``: for ``oasst`` and ``file`` their conversations,
    for ``benchmarks`` none (``seed_set`` gives its examples); the first ``data.seed.limit`` when set."""
    s = cfg.data.seed
    if s.source == "oasst":
        convs = load_oasst(oasst_path(cfg), lang=str(s.lang),
                           max_turns=None if s.max_turns is None else int(s.max_turns))
        if not convs:
            raise PoolError(f"data.seed.source=oasst: no {s.lang} conversation in {oasst_path(cfg)} passes the rule "
                            "of cream/data/oasst.py")
    elif s.source == "file":
        if s.path is None:
            raise PoolError("data.seed.source=file needs data.seed.path=FILE_OR_FOLDER (records {\"messages\": [...]})")
        convs = load_conversations(s.path)
    else:
        return []
    return convs if s.limit is None else convs[: int(s.limit)]


def _parts(items: list, t: int, iterations: int) -> list:
    """Part t (1-based) of ``items`` cut into ``iterations`` contiguous parts of near-equal size."""
    n = len(items)
    size, extra = divmod(n, iterations)
    start = (t - 1) * size + min(t - 1, extra)
    return items[start: start + size + (t <= extra)]


def full_pool(cfg: DictConfig) -> list[Example | Prompt]:
    """The whole pool D_U of ``data.pool=paper`` or ``file``, shuffled with the seed (before it is cut)."""
    if cfg.data.pool == "file":
        if cfg.data.prompts is None:
            raise PoolError("data.pool=file needs data.prompts=FILE_OR_FOLDER (records {\"prompt\": ...} or "
                            "{\"messages\": [...]})")
        items: list = load_prompts(cfg.data.prompts)
    else:
        source = "oasst" if cfg.data.seed.source == "oasst" else "seed"
        items = [Prompt(f"{source}-{c['id']}", source, tuple(c["messages"][: _first_user(c["messages"]) + 1]))
                 for c in seed_conversations(cfg)]
        items += [ex for name in cfg.data.benchmarks
                  for ex in load_benchmark(name, "train", data_dir=cfg.data.dir, source=cfg.data.source)]
    random.Random(f"{cfg.seed}-pool").shuffle(items)
    return items


def _first_user(messages: list[dict]) -> int:
    return next(j for j, m in enumerate(messages) if m["role"] == "user")


def prompt_slice(cfg: DictConfig, t: int) -> list[Example | Prompt]:
    """Slice t (1-based) of the unlabeled pool: disjoint from the other slices (and, per benchmark, from the seed
    set)."""
    n = cfg.data.n_prompts
    if cfg.data.pool == "per_benchmark":
        if n is None or int(n) < 1:
            raise PoolError(f"data.n_prompts={n}: the prompt pool is empty; it must be >= 1")
        n_seed, n = cfg.data.n_seed, int(n)
        start = n_seed + (t - 1) * n
        return [ex for name in cfg.data.benchmarks for ex in _train(cfg, name)[start: start + n]]
    part = _parts(full_pool(cfg), t, cfg.pipeline.iterations)
    if not part:
        raise PoolError(f"data.pool={cfg.data.pool}: part {t} of {cfg.pipeline.iterations} of the pool is empty; "
                        "the pool has fewer prompts than pipeline.iterations")
    return part if n is None else part[: int(n)]


def eval_sets(cfg: DictConfig) -> dict[str, list[Example]]:
    """The first ``eval.limit`` examples of each benchmark's eval split (file order: a fixed subset), then
    the sets of ``data.eval_files`` (name -> JSONL file), cut the same way."""
    out = {}
    for name in cfg.eval.benchmarks:
        split = cfg.eval.splits[name]
        out[name] = load_benchmark(name, split, data_dir=cfg.data.dir, source=cfg.data.source)
    for name, path in (cfg.data.eval_files or {}).items():
        out[str(name)] = load_eval_file(str(name), path)
    return {k: v if cfg.eval.limit is None else v[: cfg.eval.limit] for k, v in out.items()}
