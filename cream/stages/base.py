"""M0, the base model: built offline for the tiny default, converted once to a plain folder from a GGUF
checkpoint (``model.gguf_file``), otherwise named by ``model.name_or_path`` (a hub id or a folder).

The manifest records how the tokenizer formats and ends turns: whether it has a chat template, the token
that ends a response (trained after every response, and a stop id of generation) and every stop id.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from cream import artifacts
from cream.data.benchmarks import BENCHMARKS, load_benchmark
from cream.data.prompts import EVAL_INSTRUCTION, format_question, sft_target
from cream.models.loading import convert_gguf, load_tokenizer
from cream.models.tiny import build_tiny
from cream.models.tokens import template_info
from cream.stages.context import MODEL, Context, writes_base

log = logging.getLogger(__name__)


def shipped_text() -> list[str]:
    """The text of the shipped sample (questions, options, targets): what the tiny tokenizer is trained on."""
    texts = []
    for name in BENCHMARKS:
        for split in ("train", "validation", "test"):
            try:
                examples = load_benchmark(name, split)
            except (ValueError, FileNotFoundError):
                continue  # a split this benchmark does not have
            texts += [format_question(ex) + "\n" + sft_target(ex) for ex in examples]
    return texts


def _turns(path: str, trust_remote_code: bool) -> dict:
    from transformers import GenerationConfig

    tok = load_tokenizer(path, trust_remote_code)
    try:
        gen = SimpleNamespace(generation_config=GenerationConfig.from_pretrained(path))
    except OSError:  # no generation_config.json: the tokenizer's EOS is the only stop id
        gen = None
    info = template_info(tok, gen)
    log.info("M0 %s: %s, responses end with %r (id %d), generation stops at %s", path,
             "chat template" if info["chat_template"] else "NO chat template (plain text prompts)",
             info["turn_end"], info["turn_end_id"], info["stop_ids"])
    return info


EVERY_RANK = False  # rank 0 builds or converts M0 while the others wait


def stale_keys(ctx: Context, **_) -> list[str]:
    return MODEL


def run(ctx: Context, out: Path) -> dict:
    m = ctx.cfg.model
    if not writes_base(m):
        artifacts.write_json(out / "model.json", {"name_or_path": m.name_or_path})
        summary = {"name_or_path": m.name_or_path}
    elif m.name_or_path is None:
        t = m.tiny
        build_tiny(ctx.paths.model(0), shipped_text() + [EVAL_INSTRUCTION], vocab_size=t.vocab_size,
                   hidden_size=t.hidden_size, intermediate_size=t.intermediate_size, num_layers=t.num_layers,
                   num_heads=t.num_heads,
                   max_position_embeddings=t.max_position_embeddings, seed=ctx.cfg.seed)
        summary = {"name_or_path": str(ctx.paths.model(0)), "built": "tiny"}
    else:
        convert_gguf(m.name_or_path, m.gguf_file, ctx.paths.model(0), m.dtype)
        summary = {"name_or_path": str(ctx.paths.model(0)), "converted_from": f"{m.name_or_path} {m.gguf_file}"}
    return {**summary, **_turns(ctx.model_path(0), bool(m.trust_remote_code))}
