"""Multiple choice the way lm-evaluation-harness scores it (its task definitions arc_easy, arc_challenge,
openbookqa, social_iqa), so that ``eval_acc`` / ``eval_acc_norm`` can be set beside published lm-eval numbers.

Each option is scored as the continuation ``" " + option text`` (lm-eval's ``target_delimiter``) of the
context (lm-eval's ``doc_to_text``):

    ARC-Easy / ARC-Challenge   "Question: <question>\\nAnswer:"
    OpenBookQA                 "<question stem>"
    Social IQa                 "Q: <context> <question>\\nA:"

The log-likelihood of an option is sum_i log p(c_i | context, c_<i) over its continuation tokens, with no
EOS after it and no chat template (``chat_template=True`` renders the context as the user turn of the
model's chat template first, like lm-eval's ``--apply_chat_template``).  Tokenization follows lm-eval's
HF model: no special tokens are added; the context and context+continuation are tokenized whole and the
continuation's tokens are those past the context's (trailing spaces of the context move to the
continuation); a sequence longer than ``max_length`` keeps its last tokens.

    acc       the option with the highest log-likelihood is right
    acc_norm  the option with the highest log-likelihood / len(option text in characters) is right

Ties go to the first option (``argmax``).  Standard errors: ``cream.evaluation.answers.stderr``.
"""
from __future__ import annotations

from collections.abc import Sequence

from cream.data.benchmarks import Example
from cream.data.prompts import render

DELIMITER = " "


def context(ex: Example) -> str:
    """lm-eval's ``doc_to_text`` for the benchmark of ``ex`` (multiple choice only)."""
    if not ex.is_multiple_choice:
        raise ValueError(f"{ex.benchmark} is not multiple choice: lm-eval's format scores options")
    if ex.benchmark == "obqa":
        return ex.question
    if ex.benchmark == "siqa":  # Example.question is already "<context> <question>"
        return f"Q: {ex.question}\nA:"
    return f"Question: {ex.question}\nAnswer:"


def continuations(ex: Example) -> list[str]:
    """The scored continuation of each option: the delimiter and the option text."""
    return [DELIMITER + text for text in ex.choices]


def encode(tok, ctx: str, continuation: str, max_length: int) -> tuple[list[int], int]:
    """(context + continuation ids, index of the first continuation token), lm-eval's way (module docstring)."""
    n = len(ctx) - len(ctx.rstrip(" "))
    if n:
        ctx, continuation = ctx[:-n], ctx[-n:] + continuation
    whole = tok(ctx + continuation, add_special_tokens=False)["input_ids"]
    start = len(tok(ctx, add_special_tokens=False)["input_ids"])
    if start >= len(whole):
        raise ValueError(f"the continuation {continuation!r} has no tokens of its own after {ctx[-40:]!r}")
    if len(whole) > max_length:
        cut = len(whole) - max_length
        whole, start = whole[cut:], max(start - cut, 1)
    return whole, start


def requests(tok, examples: Sequence[Example], max_length: int,
             chat_template: bool = False) -> tuple[list[str], list, list]:
    """The rendered context of each example and the (ids, start) of every option, examples in order."""
    contexts, seqs, starts = [], [], []
    for ex in examples:
        ctx = render(tok, context(ex)) if chat_template else context(ex)
        contexts.append(ctx)
        for cont in continuations(ex):
            ids, start = encode(tok, ctx, cont, max_length)
            seqs.append(ids)
            starts.append(start)
    return contexts, seqs, starts


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def predict(ex: Example, logliks: Sequence[float]) -> tuple[str, str]:
    """(prediction by acc, prediction by acc_norm) from the option log-likelihoods, as option labels."""
    if len(logliks) != len(ex.choices):
        raise ValueError(f"{ex.id}: {len(logliks)} scores for {len(ex.choices)} options")
    norm = [lp / max(len(text), 1) for lp, text in zip(logliks, ex.choices)]
    return ex.labels[_argmax(logliks)], ex.labels[_argmax(norm)]
