"""lm-evaluation-harness conventions: contexts per task, tokenization of the continuation, acc / acc_norm on
hand-made scores, and the loglik mode on a tiny model against an independent forward pass."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from cream.data import Example, load_benchmark
from cream.evaluation import lm_eval_format as lf
from cream.evaluation.answers import stderr
from cream.stages import evaluate as ev

ARC = Example("Mercury_1", "arc_easy", "Which gas do plants take in?", ("oxygen", "carbon dioxide", "helium", "neon"),
              ("A", "B", "C", "D"), "B")


def test_contexts_follow_the_lm_eval_task_definitions():
    assert lf.context(ARC) == "Question: Which gas do plants take in?\nAnswer:"
    assert lf.context(Example("x", "arc_challenge", "Why?", ("a", "b"), ("A", "B"), "A")) == "Question: Why?\nAnswer:"
    assert lf.context(Example("x", "obqa", "The sun is", ("hot", "cold"), ("A", "B"), "A")) == "The sun is"
    siqa = load_benchmark("siqa", "validation")[0]  # Example.question = context + " " + question
    assert lf.context(siqa) == f"Q: {siqa.question}\nA:"
    assert lf.continuations(ARC) == [" oxygen", " carbon dioxide", " helium", " neon"]
    with pytest.raises(ValueError, match="not multiple choice"):
        lf.context(Example("g", "gsm8k", "1+1?", None, None, "2"))


class CharTok:
    """One token per character: token boundaries are plain to see."""

    def __call__(self, text, add_special_tokens=False):
        assert add_special_tokens is False
        return {"input_ids": [ord(c) for c in text]}


def test_encode_splits_context_and_continuation():
    ids, start = lf.encode(CharTok(), "Q:\nA:", " yes", max_length=100)
    assert ids == [ord(c) for c in "Q:\nA: yes"] and start == len("Q:\nA:")
    ids, start = lf.encode(CharTok(), "Answer: ", "x", max_length=100)  # the trailing space moves to the continuation
    assert start == len("Answer:") and ids[start:] == [ord(" "), ord("x")]
    ids, start = lf.encode(CharTok(), "0123456789", " ab", max_length=5)  # keeps the last tokens
    assert ids == [ord(c) for c in "89 ab"] and start == 2


@pytest.mark.parametrize("logliks,expected", [
    ([-3.0, -5.0, -9.0, -9.5], ("A", "B")),    # acc: -3 beats -5; acc_norm: -5 / 14 chars beats -3 / 6 chars
    ([-6.0, -14.5, -3.0, -9.0], ("C", "C")),
    ([-6.0, -13.0, -7.0, -9.0], ("A", "B")),   # acc_norm: -0.93 for "carbon dioxide" vs -1.0 for "oxygen"
    ([-4.0, -4.0, -4.0, -4.0], ("A", "B")),    # ties: the first; per character the longest option wins
])
def test_acc_and_acc_norm_on_hand_made_scores(logliks, expected):
    assert lf.predict(ARC, logliks) == expected
    lens = np.array([len(t) for t in ARC.choices], dtype=float)  # independent: lm-eval's own expressions
    assert ARC.labels[int(np.argmax(logliks))] == expected[0]
    assert ARC.labels[int(np.argmax(np.array(logliks) / lens))] == expected[1]


def test_summarize_accuracies_stderrs_and_averages():
    per_item = {"eval_acc": {"arc_easy": [1.0, 0.0, 1.0, 1.0], "obqa": [0.0, 1.0]},
                "eval_acc_norm": {"arc_easy": [1.0] * 4}}
    r = ev.summarize(per_item)
    assert r["eval_acc"] == {"arc_easy": 0.75, "obqa": 0.5}
    assert r["eval_acc_stderr"]["arc_easy"] == pytest.approx(math.sqrt(0.75 * 0.25 / 3))
    assert r["eval_acc_stderr"]["obqa"] == pytest.approx(math.sqrt(0.5 * 0.5 / 1))
    assert r["eval_acc_avg"] == pytest.approx(0.625)
    se = [math.sqrt(0.75 * 0.25 / 3), 0.5]
    assert r["eval_acc_avg_stderr"] == pytest.approx(math.sqrt(se[0] ** 2 + se[1] ** 2) / 2)
    assert r["eval_acc_norm_stderr"] == {"arc_easy": 0.0}
    assert r["eval"] == {} and r["eval_avg"] is None and r["eval_avg_stderr"] is None
    assert set(r) == {f + s
                      for f in ("eval", "eval_lenient", "eval_strict", "eval_official", "eval_acc", "eval_acc_norm")
                      for s in ("", "_stderr", "_avg", "_avg_stderr")}


def _forward_logliks(model, tok, ctx: str, option: str) -> float:
    """Independently: one forward pass over context + " " + option, summing the option tokens' log-probs."""
    c = tok(ctx, add_special_tokens=False)["input_ids"]
    whole = tok(ctx + " " + option, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), -1)
    return float(sum(logp[i - 1, whole[i]] for i in range(len(c), len(whole))))


def test_loglik_mode_matches_an_independent_forward_pass(tiny_dir, monkeypatch):
    from cream.models.loading import load_model, load_tokenizer

    batches = []  # the option sequences per forward that the stage asks for: eval.loglik_batch_size
    score = ev.score_shared_context
    monkeypatch.setattr(ev, "score_shared_context", lambda *a, **k: batches.append(k["batch_size"]) or score(*a, **k))

    tok, model = load_tokenizer(tiny_dir), load_model(tiny_dir)
    examples = (load_benchmark("arc_easy", "test")[:5] + load_benchmark("obqa", "test")[:3]
                + load_benchmark("siqa", "validation")[:3])
    cfg = OmegaConf.create({"model": {"max_length": 256},
                            "eval": {"batch_size": 64, "loglik_batch_size": 8, "loglik_chat_template": False}})
    scores, preds = ev.loglik(model, tok, examples, cfg, "test")
    assert batches == [8]
    assert len(preds) == len(examples) and len(scores["acc"]) == len(examples)
    for ex, p in zip(examples, preds):
        ctx = lf.context(ex)
        assert p["prompt"] == ctx and [o["label"] for o in p["options"]] == list(ex.labels)
        ll = [_forward_logliks(model, tok, ctx, text) for text in ex.choices]
        assert [o["loglik"] for o in p["options"]] == pytest.approx(ll, abs=1e-4)
        assert [o["chars"] for o in p["options"]] == [len(t) for t in ex.choices]
        acc = ex.labels[int(np.argmax(ll))]
        norm = ex.labels[int(np.argmax(np.array(ll) / np.array([len(t) for t in ex.choices])))]
        assert (p["acc"]["answer"], p["acc_norm"]["answer"]) == (acc, norm)
        assert p["acc"]["correct"] == (acc == ex.answer) and p["acc_norm"]["correct"] == (norm == ex.answer)
    assert scores["acc"] == [float(p["acc"]["correct"]) for p in preds]
    r = ev.summarize({"eval_acc": {"mix": scores["acc"]}})
    assert r["eval_acc_stderr"]["mix"] == pytest.approx(stderr(scores["acc"]))
