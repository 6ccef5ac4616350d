"""Every path that only reads a model runs without autograd: no forward call with grad enabled.

A global forward pre-hook records each module call made while ``torch.is_grad_enabled()``; the
inference functions must leave it empty.  The same hook on a function with its no-grad guard removed
(``__wrapped__``) records calls, so the check can fail.
"""
from __future__ import annotations

import pytest
import torch

from cream.data.benchmarks import load_benchmark
from cream.models.loading import load_model, load_tokenizer
from cream.models.scoring import score_sequences
from cream.models.tokens import encode_pair
from cream.rewarders.judge import expected_scores
from cream.rewarders.self_reward_head import head_rewards
from cream.sampling.hf import generate
from cream.stages.evaluate import generative, loglik
from cream.training.head_module import SelfRewardHead
from cream.training.rm_module import RewardModel
from cream.training.train_rm import score_responses


@pytest.fixture
def grad_calls():
    calls: list[str] = []

    def hook(module, args):
        if torch.is_grad_enabled():
            calls.append(type(module).__name__)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    yield calls
    handle.remove()


@pytest.fixture(scope="module")
def tok_model(tiny_dir):
    return load_tokenizer(tiny_dir), load_model(tiny_dir)


def _encoded(tok):
    enc = [encode_pair(tok, p, r, 64, 32) for p, r in [("Which gas?", "carbon dioxide"), ("Q", "A. oxygen")]]
    return [e[0] for e in enc], [e[1] for e in enc]


def test_score_sequences(tok_model, grad_calls):
    tok, model = tok_model
    seqs, starts = _encoded(tok)
    out = score_sequences(model, seqs, starts, tok.pad_token_id, progress=False)
    assert len(out) == 2 and not grad_calls
    score_sequences.__wrapped__(model, seqs, starts, tok.pad_token_id, progress=False)  # without its guard
    assert grad_calls, "the hook did not see a forward with grad enabled: the check cannot fail"


def test_generate(tok_model, grad_calls):
    tok, model = tok_model
    texts, n_trunc = generate(model, tok, ["Which gas?", "Q"], n=2, max_new_tokens=4, temperature=0.7, top_p=0.9,
                              progress=False)
    assert [len(t) for t in texts] == [2, 2] and not grad_calls


def test_judge_forced_score(tok_model, grad_calls):
    tok, model = tok_model
    scores = expected_scores(model, tok, ["Rate it.\nScore:", "Another.\nScore:"], max_length=64)
    assert all(0 <= s <= 5 for s in scores) and not grad_calls


def test_evaluation(tok_model, grad_calls):
    from omegaconf import OmegaConf

    tok, model = tok_model
    examples = load_benchmark("arc_easy", "test")[:3]
    cfg = OmegaConf.create({"model": {"max_length": 128, "max_prompt_length": 96},
                            "eval": {"batch_size": 2, "loglik_batch_size": 8, "max_new_tokens": 4,
                                     "extraction": "lenient", "loglik_chat_template": False}})
    scores, _ = loglik(model, tok, examples, cfg, "loglik")
    assert len(scores["acc"]) == 3 and not grad_calls
    scores, _ = generative(model, tok, examples, cfg, "generate")
    assert len(scores["lenient"]) == 3 and not grad_calls


def test_reward_model_scoring(tiny_dir, tok_model, grad_calls):
    tok, _ = tok_model
    rm = RewardModel.from_lm(tiny_dir)
    out = score_responses(rm, tok, ["Which gas?", "Q"], ["carbon dioxide", "A"], max_length=64, max_prompt_length=32)
    assert len(out) == 2 and not grad_calls


def test_self_reward_head_scoring(tok_model, grad_calls):
    tok, model = tok_model
    seqs, starts = _encoded(tok)
    head = SelfRewardHead(model.config.hidden_size, 8)
    out = head_rewards(model, head, seqs, starts, tok.pad_token_id)
    assert all(0 < v < 1 for v in out) and not grad_calls
