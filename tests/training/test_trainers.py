"""trainer= configs: Lightning arguments plus the project's own trainer.cream, strategies built from config,
activation checkpointing wired."""
from __future__ import annotations

import inspect

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, compose

TRAINERS = sorted(p.stem for p in (ROOT / "conf" / "trainer").glob("*.yaml"))
LIGHTNING_ARGS = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}


@pytest.mark.parametrize("name", TRAINERS)
def test_trainer_keys_are_lightning_arguments_beside_the_projects_own(name):
    cfg = compose([f"trainer={name}"])
    assert set(cfg.trainer) - {"cream"} <= LIGHTNING_ARGS, set(cfg.trainer) - {"cream"} - LIGHTNING_ARGS
    assert set(cfg.trainer.cream) == {"checkpoint_every_n_steps", "keep_checkpoints", "checkpoint_every_minutes",
                                      "activation_checkpointing", "gpu_memory_gb"}
    assert cfg.trainer.cream.checkpoint_every_minutes is None  # by steps only, unless asked
    assert cfg.trainer.cream.activation_checkpointing is False and cfg.trainer.gradient_clip_val == 1.0
    assert cfg.trainer.cream.gpu_memory_gb == (None if name == "cpu" else 80)


def test_ddp_and_fsdp_configs():
    from hydra.utils import instantiate

    from cream.training.strategies import LayerWrapFSDPStrategy

    ddp = compose(["trainer=ddp"]).trainer
    assert (ddp.strategy, ddp.precision, ddp.num_nodes) == ("ddp", "bf16-mixed", 1)
    fsdp = compose(["trainer=fsdp"]).trainer
    strategy = instantiate(fsdp.strategy)
    assert isinstance(strategy, LayerWrapFSDPStrategy) and fsdp.precision == "bf16-mixed"


def test_fsdp_wraps_the_decoder_layers(tiny_dir):
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from cream.models.loading import load_model
    from cream.training.strategies import layer_classes

    model = load_model(tiny_dir)
    assert layer_classes(model) == {LlamaDecoderLayer}  # from the model's _no_split_modules
    assert layer_classes(model, ["LlamaDecoderLayer", "NotThere"]) == {LlamaDecoderLayer}
    with pytest.raises(ValueError, match="layer_cls"):
        layer_classes(model, ["NotThere"])


def test_make_trainer_instantiates_a_strategy_dict(tmp_path):
    from lightning.pytorch.strategies import DDPStrategy

    from cream.training.trainer import make_trainer

    cfg = compose(["trainer=cpu"])
    OmegaConf.set_struct(cfg, False)
    cfg.trainer.strategy = {"_target_": "lightning.pytorch.strategies.DDPStrategy", "process_group_backend": "gloo"}
    trainer = make_trainer(cfg, tmp_path, max_epochs=1)
    assert isinstance(trainer.strategy, DDPStrategy)


def _checkpointing(model) -> bool:
    if hasattr(model, "is_activation_checkpointing"):
        return model.is_activation_checkpointing
    return model.is_gradient_checkpointing


def test_activation_checkpointing_switch(tiny_dir):
    from cream.models.loading import load_model
    from cream.models.scoring import pad_batch, response_logps
    from cream.training.trainer import prepare_model

    off = prepare_model(compose(["trainer=cpu"]), load_model(tiny_dir))
    assert not _checkpointing(off)
    for extra in ([], ["model.lora={r: 4, target_modules: [q_proj, v_proj]}"]):
        model = prepare_model(compose(["trainer=cpu", "trainer.cream.activation_checkpointing=true", *extra]),
                              load_model(tiny_dir)).train()
        assert _checkpointing(model)
        b = pad_batch([[1, 5, 6, 7, 2], [1, 8, 9, 2]], [2, 2], 3)
        loss = -response_logps(model, b["input_ids"], b["attention_mask"], b["response_mask"]).sum()
        loss.backward()  # gradients flow through the checkpointed layers (to the adapters with LoRA)
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("overrides, dtype", [
    ([], "float32"),                                                    # tiny default: float32, 32-true
    (["model=llama3_8b", "trainer=gpu"], "float32"),                    # bf16 weights, bf16-mixed: fp32 masters
    (["model=llama3_8b", "trainer=gpu", "trainer.precision=bf16-true"], "bfloat16"),  # pure bf16, as asked
    (["model=llama3_8b", "trainer=gpu", "model.lora={r: 8}"], "bfloat16"),  # LoRA: frozen base stays bf16
])
def test_training_dtype(overrides, dtype):
    from cream.training.trainer import training_dtype

    assert training_dtype(compose(overrides)) == dtype
