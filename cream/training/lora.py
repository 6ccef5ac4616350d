"""LoRA adapters (peft) for the training stages, merged back before saving.

Enable with ``model.lora`` (null by default), e.g.

    cream-train 'model.lora={r: 8, alpha: 16, dropout: 0.05, target_modules: [q_proj, v_proj]}'

Each SFT/DPO stage puts fresh adapters on M_t (B = 0, so the adapted model starts as M_t exactly and the
reference log-probs computed in the reward step stay M_t's), trains only the adapters, then merges them
(``merge_and_unload``): every saved M_k is full weights, loaded like any other model.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cream.errors import ConfigError

DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"], "bias": "none"}


def config(spec: Mapping[str, Any]):
    from omegaconf import DictConfig, OmegaConf
    from peft import LoraConfig, TaskType

    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    unknown = set(spec) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"model.lora: unknown keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **spec}
    targets = s["target_modules"]
    return LoraConfig(r=int(s["r"]), lora_alpha=int(s["alpha"]), lora_dropout=float(s["dropout"]), bias=s["bias"],
                      target_modules=list(targets) if not isinstance(targets, str) else targets,
                      task_type=TaskType.CAUSAL_LM)


def apply(model, spec: Mapping[str, Any]):
    """``model`` with fresh LoRA adapters (identity at start); only the adapters require grad."""
    from peft import get_peft_model

    return get_peft_model(model, config(spec))


def merge(model):
    """Full weights: the adapters merged in and removed (a model without adapters is returned as is)."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model
