"""Evaluate M_k zero-shot on the configured benchmarks.

``eval.modes``:

``generate`` (the paper's format): the question with lettered options and the instruction "Answer the
question by thinking step by step ... starting with 'Answer:'" in the chat template, greedy decoding, and
the answer read out of the output under three rule sets (``cream.evaluation.answers``): ``lenient`` (this project's),
``strict`` (explicit answer statements only) and ``official`` (the CREAM authors' ``evaluate.py``).
``eval`` is the accuracy under ``eval.extraction`` (lenient by default); all three are always recorded.

``loglik`` (multiple choice only): lm-evaluation-harness's format and metrics (``cream.evaluation.lm_eval_format``):
``eval_acc`` (summed log-likelihood of " <option text>") and ``eval_acc_norm`` (divided by the option's
length in characters), no chat template unless ``eval.loglik_chat_template``.

``eval.limit`` cuts every split to its first N examples (a fixed subset); ``eval.generate_limit`` cuts the
generative mode further (generation costs far more than scoring options), so log-likelihood accuracy can
cover many more questions than the generative one.

Every accuracy comes with its standard error (``<key>_stderr``: sqrt(p (1 - p) / (n - 1)), lm-eval's), and
every average over benchmarks (``<key>_avg``) with ``<key>_avg_stderr`` = sqrt(sum se_b^2) / #benchmarks.
A killed evaluation resumes part by part: each (mode, benchmark) part is saved in the stage's ``.parts/`` as it
finishes, and the rerun of the same stage (same config and inputs, as the pipeline checks) reads the saved parts
instead of computing them again. A part is computed from the model alone, so the result is the same either way;
``.parts/`` is removed once the stage's outputs are written.

``predictions.jsonl`` (generate): one line per example with the rendered prompt, the raw output, and
for each rule set the answer, the rule that found it and whether it is right (``correct``: under
``eval.extraction``).  ``predictions_loglik.jsonl`` (loglik): one line per example with the context and
each option's continuation, log-likelihood, length in characters and tokens, and both predictions.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from cream import artifacts, faults
from cream.config import EvalMode
from cream.data.pool import eval_sets
from cream.data.prompts import format_prompt, render
from cream.distributed import is_main
from cream.evaluation import lm_eval_format
from cream.evaluation.answers import RULE_SETS, extract, matches, mean_stderr, stderr
from cream.evaluation.families import FAMILIES
from cream.models.loading import load_model, load_tokenizer, on_device
from cream.models.precision import for_inference, resolve
from cream.models.scoring import score_shared_context
from cream.sampling.hf import generate
from cream.stages.context import EVAL, INFERENCE, MODEL, PARTS, Context

log = logging.getLogger(__name__)
DTYPE_KEYS = {"generate": "inference.eval_dtype", "loglik": "inference.loglik_dtype"}


def generative(model, tok, examples, cfg, desc: str) -> tuple[dict[str, list[float]], list[dict]]:
    """Greedy outputs for the paper's prompts; per rule set the 0/1 score of each example, and the predictions."""
    prompts = [render(tok, format_prompt(ex)) for ex in examples]
    outputs, _ = generate(model, tok, prompts, max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size,
                          max_prompt_length=cfg.model.max_prompt_length, desc=desc,
                          engine=OmegaConf.select(cfg, "inference.decode", default="auto"))
    headline = cfg.eval.extraction
    scores: dict[str, list[float]] = {rules: [] for rules in RULE_SETS}
    predictions = []
    for ex, prompt, out in zip(examples, prompts, outputs):
        rec = {"benchmark": ex.benchmark, "id": ex.id, "mode": "generate", "gold": ex.answer, "prompt": prompt,
               "output": out[0]}
        for rules in RULE_SETS:
            found = extract(ex, out[0], rules)
            ok = matches(ex, found, rules)
            rec[rules] = {"answer": found.answer, "rule": found.rule, "correct": ok}
            scores[rules].append(float(ok))
        rec["correct"] = rec[headline]["correct"]
        predictions.append(rec)
    return scores, predictions


def loglik(model, tok, examples, cfg, desc: str) -> tuple[dict[str, list[float]], list[dict]]:
    """lm-eval's option scoring; the 0/1 ``acc`` and ``acc_norm`` of each example, and the predictions.

    Each question's context runs once and its options are scored from the context's KV cache
    (``cream.models.scoring.score_shared_context``; the same log-likelihoods as scoring each option whole)."""
    contexts, seqs, starts = lm_eval_format.requests(tok, examples, cfg.model.max_length,
                                                     cfg.eval.loglik_chat_template)
    lps, tokens = score_shared_context(model, seqs, starts, [len(ex.choices) for ex in examples], tok.pad_token_id,
                                       batch_size=cfg.eval.loglik_batch_size, desc=desc)
    log.info("%s: %d tokens through the model for %d questions (%d when each option runs whole)", desc,
             tokens["tokens_shared"], len(examples), tokens["tokens_per_sequence"])
    scores: dict[str, list[float]] = {"acc": [], "acc_norm": []}
    predictions, j = [], 0
    for ex, ctx in zip(examples, contexts):
        n = len(ex.choices)
        lp = lps[j: j + n]
        by_acc, by_norm = lm_eval_format.predict(ex, lp)
        options = [{"label": label, "continuation": cont, "loglik": v, "chars": len(text),
                    "tokens": len(seqs[j + o]) - starts[j + o]}
                   for o, (label, cont, text, v) in enumerate(zip(ex.labels, lm_eval_format.continuations(ex),
                                                                  ex.choices, lp))]
        predictions.append({"benchmark": ex.benchmark, "id": ex.id, "mode": "loglik", "gold": ex.answer, "prompt": ctx,
                            "options": options, "acc": {"answer": by_acc, "correct": by_acc == ex.answer},
                            "acc_norm": {"answer": by_norm, "correct": by_norm == ex.answer}})
        scores["acc"].append(float(by_acc == ex.answer))
        scores["acc_norm"].append(float(by_norm == ex.answer))
        j += n
    return scores, predictions


def summarize(per_item: dict[str, dict[str, list[float]]]) -> dict:
    """{family: {benchmark: 0/1 scores}} -> every RESULT_KEY: accuracies, stderrs, averages (None when absent)."""
    result: dict = {}
    for fam in FAMILIES:
        benches = per_item.get(fam, {})
        result[fam] = {b: sum(s) / len(s) for b, s in benches.items()}
        result[f"{fam}_stderr"] = {b: stderr(s) for b, s in benches.items()}
        accs, ses = list(result[fam].values()), list(result[f"{fam}_stderr"].values())
        result[f"{fam}_avg"] = sum(accs) / len(accs) if accs else None
        result[f"{fam}_avg_stderr"] = mean_stderr(ses) if accs else None
    return result


EVERY_RANK = True  # each rank evaluates its share of the questions


def stale_keys(ctx: Context, **_) -> list[str]:
    return [*MODEL, *EVAL, *INFERENCE["eval"]]


def in_dtype_order(cfg) -> list[str]:
    """The configured modes, those without an ``inference.*_dtype`` first (casting weights down is one way)."""
    return sorted((m for m in EvalMode if m in cfg.eval.modes),
                  key=lambda m: resolve(OmegaConf.select(cfg, DTYPE_KEYS[m]), DTYPE_KEYS[m]) is not None)


def model_for(model, load: Callable, cfg, mode: str):
    """The model for ``mode``, in the mode's ``inference.*_dtype``: the model already loaded when it fits (cast now
    if it was not cast yet), else ``load()`` again (its weights were cast for an earlier mode)."""
    key = DTYPE_KEYS[mode]
    name = OmegaConf.select(cfg, key)
    wanted, cast = resolve(name, key), getattr(model, "_cream_cast", False)
    if model is None or cast and wanted != next(model.parameters()).dtype:
        model, cast = load(), False
    if wanted is not None and not cast:
        before = next(model.parameters()).dtype
        model = for_inference(model, name, key)
        model._cream_cast = next(model.parameters()).dtype != before
    return model


def run(ctx: Context, out: Path, k: int) -> dict:
    cfg = ctx.cfg
    sets = eval_sets(cfg)
    tok = load_tokenizer(ctx.model_path(k), cfg.model.trust_remote_code)

    def load():
        return on_device(load_model(ctx.model_path(k), cfg.model.dtype, cfg.model.trust_remote_code), cfg)

    result, predictions, loglik_predictions = evaluate_model(load, tok, sets, cfg, f"M{k}", parts=out / PARTS)
    if is_main():  # several ranks: each evaluated a shard, all hold every result; rank 0 writes
        artifacts.write_jsonl(out / "predictions.jsonl", predictions)
        artifacts.write_jsonl(out / "predictions_loglik.jsonl", loglik_predictions)
        artifacts.write_json(ctx.paths.eval_result(k), result)
        shutil.rmtree(out / PARTS, ignore_errors=True)
    return result


def _part(parts: Path | None, mode: str, name: str, compute: Callable) -> tuple[dict, list[dict]]:
    """One part's (scores, predictions): read back when a killed run of this stage saved it, else ``compute()``d
    and saved (by rank 0) into ``parts``. ``CREAM_FAULT=<stage>:step=<n>:...`` fires before the part that follows
    n saved ones."""
    if parts is None:
        return compute()
    path = parts / f"{mode}-{name}.json"
    if path.exists():
        saved = artifacts.read_json(path)
        log.info("%s %s: read from %s (saved before the stage was stopped)", mode, name, path)
        return saved["scores"], saved["predictions"]
    faults.before_part(parts.parent, len(list(parts.glob("*.json"))) if parts.exists() else 0)
    scores, predictions = compute()
    if is_main():
        artifacts.write_json(path, {"scores": scores, "predictions": predictions})
    return scores, predictions


def evaluate_model(load: Callable, tok, sets: dict, cfg, label: str,
                   parts: Path | None = None) -> tuple[dict, list[dict], list[dict]]:
    """(result, generative predictions, log-likelihood predictions) of one model on ``sets`` (name -> examples);
    ``load()`` gives the model on its device (called again only to undo a cast); ``label`` names it in progress
    lines; ``parts``: where each finished part is saved, and read back from on a rerun (None: nothing saved)."""
    headline = cfg.eval.extraction
    per_item: dict[str, dict[str, list[float]]] = {fam: {} for fam in FAMILIES}
    predictions: list[dict] = []
    loglik_predictions: list[dict] = []
    held = [None]  # the model, loaded (or cast) only when a part must be computed

    def model_in(mode: str):
        held[0] = model_for(held[0], load, cfg, mode)
        return held[0]

    for mode in in_dtype_order(cfg):  # a mode that keeps the loaded dtype runs before one that casts the weights
        for name, examples in sets.items():
            if not examples:
                continue
            if mode == "generate":
                few = examples if cfg.eval.generate_limit is None else examples[: cfg.eval.generate_limit]
                scores, preds = _part(parts, mode, name, lambda m=mode, n=name, ex=few: generative(
                    model_in(m), tok, ex, cfg, f"eval {label} {n}"))
                for rules, s in scores.items():
                    per_item[f"eval_{rules}"][name] = s
                per_item["eval"][name] = scores[headline]
                predictions += preds
            if mode == "loglik" and examples[0].is_multiple_choice:
                scores, preds = _part(parts, mode, name, lambda m=mode, n=name, ex=examples: loglik(
                    model_in(m), tok, ex, cfg, f"loglik {label} {n}"))
                per_item["eval_acc"][name], per_item["eval_acc_norm"][name] = scores["acc"], scores["acc_norm"]
                loglik_predictions += preds
    result = {"extraction": headline, "n": {name: len(ex) for name, ex in sets.items()}, **summarize(per_item)}
    if cfg.eval.generate_limit is not None:  # the generative scores cover only the first eval.generate_limit
        result["n_generate"] = {name: len(s) for name, s in per_item["eval"].items()}
    return result, predictions, loglik_predictions
