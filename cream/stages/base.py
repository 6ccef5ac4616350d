"""M0, the base model: built offline for the tiny default, otherwise named by ``model.name_or_path``."""
from __future__ import annotations

from pathlib import Path

from cream import artifacts
from cream.data.benchmarks import BENCHMARKS, load_benchmark
from cream.data.prompts import format_question, sft_target
from cream.models import build_tiny


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


def run(ctx, out: Path) -> dict:
    m = ctx.cfg.model
    if m.name_or_path is not None:
        artifacts.write_json(out / "model.json", {"name_or_path": m.name_or_path})
        return {"name_or_path": m.name_or_path}
    from cream.data.prompts import EVAL_INSTRUCTION

    t = m.tiny
    build_tiny(out / "model", shipped_text() + [EVAL_INSTRUCTION], vocab_size=t.vocab_size, hidden_size=t.hidden_size,
               intermediate_size=t.intermediate_size, num_layers=t.num_layers, num_heads=t.num_heads,
               max_position_embeddings=t.max_position_embeddings, seed=int(ctx.cfg.seed))
    return {"name_or_path": str(out / "model"), "built": "tiny"}
