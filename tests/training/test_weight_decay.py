"""Weight decay as HF Trainer applies it: biases and normalization weights are not decayed."""
from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from cream.training.optim import adamw_cosine, param_groups


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                      attention_bias=True, mlp_bias=True, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def _names(model, group):
    by_id = {id(p): n for n, p in model.named_parameters()}
    return sorted(by_id[id(p)] for p in group["params"])


def test_which_parameters_decay():
    model = _model()
    decay, plain = param_groups(model, 0.01)
    assert (decay["weight_decay"], plain["weight_decay"]) == (0.01, 0.0)
    layer = "model.layers.0."
    assert _names(model, decay) == sorted(["model.embed_tokens.weight"] + [  # lm_head is tied: listed once
        layer + f"self_attn.{x}_proj.weight" for x in "qkvo"] + [layer + f"mlp.{x}_proj.weight"
                                                                 for x in ("gate", "up", "down")])
    assert _names(model, plain) == sorted([layer + "input_layernorm.weight", layer + "post_attention_layernorm.weight",
                                           "model.norm.weight"] + [layer + f"self_attn.{x}_proj.bias" for x in "qkvo"]
                                          + [layer + f"mlp.{x}_proj.bias" for x in ("gate", "up", "down")])


def test_same_split_as_hf_trainer():
    from transformers.trainer_pt_utils import get_parameter_names

    model = _model()
    hf = get_parameter_names(model, [nn.LayerNorm],
                             [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"])
    decay, _ = param_groups(model, 0.1)
    assert set(_names(model, decay)) == set(hf) - {"lm_head.weight"}  # HF lists the tied head under both names


def test_frozen_parameters_left_out_and_layernorm_by_type():
    net = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    net[2].weight.requires_grad_(False)
    decay, plain = param_groups([net], 0.1)
    assert [p is net[0].weight for p in decay["params"]] == [True]
    assert {id(p) for p in plain["params"]} == {id(net[0].bias), id(net[1].weight), id(net[1].bias), id(net[2].bias)}


def test_one_step_with_zero_gradient_decays_only_the_decayed_group():
    """AdamW with a zero gradient moves a parameter only by decay: p <- p (1 - lr wd)."""
    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = adamw_cosine(model, lr=0.1, weight_decay=0.5, warmup_ratio=0.0, total_steps=10)["optimizer"]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        decayed = n.endswith("weight") and "norm" not in n
        want = before[n] * (1 - 0.1 * 0.5) if decayed else before[n]
        torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-7, msg=n)
