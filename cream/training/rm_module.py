"""A Bradley-Terry reward model: a causal-LM backbone and a scalar head read at the last real token.

    r(x, y) = w . h_last(x, y) + b          h_last: the backbone's final hidden state at the last
                                            non-pad position (sequences are right-padded)
    loss    = -log sigmoid(r(x, y+) - r(x, y-))

Saved as a folder: the backbone with ``save_pretrained`` (+ the tokenizer), the head as
``reward_head.safetensors`` and ``reward_model.json`` naming the format; ``load_reward_model`` reads it back,
and also reads a standard transformers ``AutoModelForSequenceClassification`` reward model folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from cream.artifacts import as_umask_allows
from cream.errors import ModelLoadError
from cream.models.loading import DTYPES
from cream.training.optim import adamw_cosine

HEAD_FILE = "reward_head.safetensors"
CONFIG_FILE = "reward_model.json"


class RewardModel(nn.Module):
    """Backbone (``AutoModel``: the decoder without its LM head) + a linear scalar head."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_lm(cls, name_or_path: str | os.PathLike, dtype: str = "float32",
                trust_remote_code: bool = False) -> RewardModel:
        """A fresh head on the decoder of a causal LM (a model folder or hub id)."""
        from transformers import AutoModel

        backbone = AutoModel.from_pretrained(str(name_or_path), dtype=DTYPES[dtype],
                                             trust_remote_code=trust_remote_code)
        return cls(backbone)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One reward per row, read at the last position whose attention mask is 1 (right padding)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.long().sum(dim=1) - 1
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.head(h.to(self.head.weight.dtype)).squeeze(-1).float()

    def save(self, out_dir: str | os.PathLike, tokenizer=None) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(str(out), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(out))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(out / HEAD_FILE))
        (out / CONFIG_FILE).write_text(json.dumps({
            "format": "cream-bradley-terry-rm", "backbone": "AutoModel",
            "hidden_size": self.backbone.config.hidden_size,
            "head": HEAD_FILE, "readout": "last non-pad token (right padding)",
            "loss": "-log sigmoid(r(x,y+) - r(x,y-))"}, indent=2) + "\n")
        return as_umask_allows(out)


class SequenceClassifierReward(nn.Module):
    """A standard transformers reward model (``AutoModelForSequenceClassification``, ``num_labels = 1``,
    e.g. one trained with TRL's RewardTrainer): reward = its score head's output at the last position whose
    attention mask is 1 (right padding), like :class:`RewardModel`.  Decoders with a ``score`` head (Llama,
    Mistral, Qwen, ...) are read there directly, so a pad token equal to EOS cannot move the read-out;
    other architectures use the model's own pooling."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        head = getattr(self.model, "score", None)
        if not isinstance(head, nn.Linear):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()
        seen = []
        hook = head.register_forward_hook(lambda module, args, out: seen.append(out))
        try:
            self.model(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            hook.remove()
        last = attention_mask.long().sum(dim=1) - 1
        return seen[0][torch.arange(input_ids.shape[0], device=input_ids.device), last, 0].float()


def is_sequence_classifier(path: Path) -> bool:
    """Does ``path`` hold a transformers ``*ForSequenceClassification`` model (its config.json says so)?"""
    try:
        archs = json.loads((Path(path) / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return False
    return any(a.endswith("ForSequenceClassification") for a in archs)


def load_reward_model(path: str | os.PathLike, dtype: str = "float32", trust_remote_code: bool = False) -> nn.Module:
    """The reward model in ``path``: this project's format (``cream-train-rm``) or a standard transformers
    ``AutoModelForSequenceClassification`` folder with one output."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CONFIG_FILE).exists() and is_sequence_classifier(path):
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=DTYPES[dtype],
                                                                   trust_remote_code=trust_remote_code)
        if model.config.num_labels != 1:
            raise ModelLoadError(f"{path}: a reward model has one output, this classifier has num_labels="
                                 f"{model.config.num_labels}")
        return SequenceClassifierReward(model).eval()
    if not (path / CONFIG_FILE).exists() or not (path / HEAD_FILE).exists():
        raise ModelLoadError(f"{path}: not a reward model folder (expected {CONFIG_FILE} and {HEAD_FILE} from "
                             "cream-train-rm, or a transformers *ForSequenceClassification model with num_labels=1)")
    rm = RewardModel.from_lm(path, dtype, trust_remote_code)
    rm.head.load_state_dict(load_file(str(path / HEAD_FILE)))
    return rm.eval()


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of -log sigmoid(r+ - r-)."""
    return -F.logsigmoid(chosen - rejected).mean()


class RewardModelModule(L.LightningModule):
    """Trains a ``RewardModel`` on batches of B pairs laid out as 2B rows, chosen first then rejected."""

    def __init__(self, reward_model: RewardModel, lr: float, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                 total_steps: int = 1):
        super().__init__()
        self.rm = reward_model.train()
        self.lr, self.weight_decay, self.warmup_ratio, self.total_steps = lr, weight_decay, warmup_ratio, total_steps

    def training_step(self, batch, batch_idx):
        r = self.rm(batch["input_ids"], batch["attention_mask"])
        b = r.shape[0] // 2
        chosen, rejected = r[:b], r[b:]
        loss = bradley_terry_loss(chosen, rejected)
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        self.log("train/accuracy", (chosen > rejected).float().mean(), prog_bar=True, batch_size=b)
        self.log("train/margin", (chosen - rejected).mean(), batch_size=b)
        return loss

    def configure_optimizers(self):
        return adamw_cosine(self.rm, self.lr, self.weight_decay, self.warmup_ratio, self.total_steps)
