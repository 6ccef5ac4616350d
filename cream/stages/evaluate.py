"""Evaluate M_k zero-shot on the configured benchmarks.

``generate`` (the paper's protocol): the question with lettered options and the instruction "Answer the
question by thinking step by step ... starting with 'Answer:'", greedy decoding, answer extraction
(``cream.answers``), accuracy.  ``loglik`` (multiple choice only, the lm-evaluation-harness way): each
option's text is scored as the continuation of "<question>\nAnswer:"; the option with the highest sum
(``eval_loglik_sum``) or token-length-normalized mean (``eval_loglik``) log-prob is the prediction.
"""
from __future__ import annotations

from pathlib import Path

from cream import artifacts
from cream.distributed import is_main
from cream.answers import is_correct
from cream.data.pool import eval_sets
from cream.data.prompts import format_prompt, format_question, render
from cream.generation import generate
from cream.models import encode_pair, load_model, load_tokenizer, on_device, score_sequences


def loglik_predictions(model, tok, examples, cfg) -> tuple[list[str], list[str]]:
    """(prediction by summed log-prob, prediction by length-normalized log-prob) per example."""
    m = cfg.model
    seqs, starts = [], []
    for ex in examples:
        ctx_text = render(tok, format_question(ex)) + "Answer:"
        for label, text in zip(ex.labels, ex.choices):
            ids, start, _ = encode_pair(tok, ctx_text, f" {label}. {text}", int(m.max_length), int(m.max_prompt_length))
            seqs.append(ids[:-1])  # no EOS: the option is a continuation, not a whole response
            starts.append(start)
    lps = score_sequences(model, seqs, starts, tok.pad_token_id, batch_size=int(cfg.eval.batch_size) * 4, desc="loglik")
    by_sum, by_norm, j = [], [], 0
    for ex in examples:
        n = len(ex.choices)
        lp = lps[j: j + n]
        norm = [v / max(1, len(seqs[j + o]) - starts[j + o]) for o, v in enumerate(lp)]
        by_sum.append(ex.labels[max(range(n), key=lp.__getitem__)])
        by_norm.append(ex.labels[max(range(n), key=norm.__getitem__)])
        j += n
    return by_sum, by_norm


def run(ctx, out: Path, k: int) -> dict:
    cfg = ctx.cfg
    tok = load_tokenizer(ctx.model_path(k), cfg.model.trust_remote_code)
    model = load_model(ctx.model_path(k), cfg.model.dtype, cfg.model.trust_remote_code)
    model = on_device(model, cfg)
    result: dict = {"eval": {}, "eval_loglik": {}, "eval_loglik_sum": {}}
    predictions = []
    for name, examples in eval_sets(cfg).items():
        if "generate" in cfg.eval.modes:
            outputs, _ = generate(model, tok, [render(tok, format_prompt(ex)) for ex in examples],
                                  max_new_tokens=int(cfg.eval.max_new_tokens), batch_size=int(cfg.eval.batch_size),
                                  max_prompt_length=int(cfg.model.max_prompt_length), desc=f"eval M{k} {name}")
            correct = [is_correct(ex, o[0]) for ex, o in zip(examples, outputs)]
            result["eval"][name] = sum(correct) / len(examples)
            predictions += [{"benchmark": name, "id": ex.id, "gold": ex.answer, "output": o[0], "correct": c}
                            for ex, o, c in zip(examples, outputs, correct)]
        if "loglik" in cfg.eval.modes and examples[0].is_multiple_choice:
            by_sum, by_norm = loglik_predictions(model, tok, examples, cfg)
            result["eval_loglik_sum"][name] = sum(p == ex.answer for p, ex in zip(by_sum, examples)) / len(examples)
            result["eval_loglik"][name] = sum(p == ex.answer for p, ex in zip(by_norm, examples)) / len(examples)
    for key in ("eval", "eval_loglik", "eval_loglik_sum"):
        vals = list(result[key].values())
        result[f"{key}_avg"] = sum(vals) / len(vals) if vals else None
    if is_main():  # several ranks: each evaluated a shard, all hold every result; rank 0 writes
        artifacts.write_jsonl(out / "predictions.jsonl", predictions)
        artifacts.write_json(out / "result.json", result)
    return result
