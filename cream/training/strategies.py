"""Lightning strategies built from the trainer config (``strategy: {_target_: cream.training.strategies.fsdp, ...}``).

YAML cannot hold the set of module classes FSDP wraps, so :func:`fsdp` takes class *names* (or none) and
the strategy resolves them against the model it is given: by default the model's own
``_no_split_modules`` (``LlamaDecoderLayer`` for Llama), i.e. one FSDP unit per decoder layer.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from lightning.pytorch.strategies import FSDPStrategy
from torch import nn

log = logging.getLogger(__name__)


def layer_classes(model: nn.Module, names: Sequence[str] | None = None) -> set[type[nn.Module]]:
    """The classes of ``model``'s submodules named in ``names`` (default: every ``_no_split_modules`` found
    on the model or its submodules)."""
    if not names:
        names = set()
        for m in model.modules():
            names |= set(getattr(m, "_no_split_modules", None) or [])
    wanted = set(names)
    found = {type(m) for m in model.modules() if type(m).__name__ in wanted}
    missing = wanted - {c.__name__ for c in found}
    if not found:
        raise ValueError(f"FSDP: none of the layer classes {sorted(wanted) or '(no _no_split_modules)'} occurs in the "
                         "model; set trainer.strategy.layer_cls to the class name of its decoder layers")
    if missing:
        log.info("FSDP: %s not in the model (wrapping %s)", sorted(missing), sorted(c.__name__ for c in found))
    return found


class LayerWrapFSDPStrategy(FSDPStrategy):
    """FSDP whose ``auto_wrap_policy`` (one unit per decoder layer) is found when the model is wrapped."""

    def __init__(self, layer_cls: Sequence[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.layer_cls = list(layer_cls) if layer_cls else None

    def _setup_model(self, model: nn.Module) -> nn.Module:
        if "auto_wrap_policy" not in self.kwargs:
            from torch.distributed.fsdp.wrap import ModuleWrapPolicy

            classes = layer_classes(model, self.layer_cls)
            log.info("FSDP: one unit per %s", ", ".join(sorted(c.__name__ for c in classes)))
            self.kwargs["auto_wrap_policy"] = ModuleWrapPolicy(classes)
        return super()._setup_model(model)


def fsdp(layer_cls: Sequence[str] | None = None, sharding_strategy: str = "FULL_SHARD", cpu_offload: bool = False,
         state_dict_type: str = "full", **kwargs) -> FSDPStrategy:
    """The FSDP strategy of ``trainer=fsdp``; extra keyword arguments go to Lightning's ``FSDPStrategy``."""
    return LayerWrapFSDPStrategy(layer_cls=layer_cls, sharding_strategy=sharding_strategy, cpu_offload=cpu_offload,
                                 state_dict_type=state_dict_type, **kwargs)
