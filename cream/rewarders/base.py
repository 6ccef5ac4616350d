"""The rewarder contract: a rewarder scores responses with a model M_k, and nothing else.

The reward stage (``cream/stages/reward.py``) owns everything around it.  It encodes the responses once
(``RewardInputs``), loads each model when a rewarder asks and frees it after, records M_t's log-probs (the
DPO reference of the iteration), and at t = 1, when M_{t-1} = M0 cannot rank with this rewarder
(``scores_base = False``: M0 has no reference for an implicit reward, no self-reward head), ranks by M0's
length-normalized log-likelihood log pi_0(y|x) / |y| instead.

A new rewarder is one file plus its config (``conf/rewarder/<name>.yaml`` with ``_target_``)::

    class LengthRewarder(Rewarder):
        def score(self, inputs, k):
            return Scores([float(n) for n in inputs.n_tokens])

Optional hooks, for a rewarder that takes part in training; the stages call them whatever the rewarder
(here they do nothing):

    sft_module(model, **optim)  the module that trains M1 (None: plain SFT)       the self-reward head
    after_sft(module, model_dir) / after_dpo(src_model_dir, dst_model_dir)         saves / carries the head
    trains / fit(cfg, m1_path, out)  something trained once from M1 before iteration 1   a reward model
                                (its own pipeline stage, ``rewarder``; its folder reaches ``score`` as
                                ``inputs.fitted``)
"""
from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cream.artifacts import Journal
from cream.models.loading import load_model, load_tokenizer, on_device
from cream.models.precision import for_inference
from cream.models.scoring import score_sequences
from cream.models.tokens import encode_pair
from cream.records import SampleRow

log = logging.getLogger(__name__)


@dataclass
class Scores:
    """One score per response (all prompts in order; None: this response could not be scored), and optional
    columns for ``rewards.jsonl`` with one entry per prompt."""

    values: list[float | None]
    columns: dict[str, list] = field(default_factory=dict)


class RewardInputs:
    """What a rewarder gets: the sampled rows, every (prompt, response) encoded once with the rule the DPO step
    uses (``encode_pair``), and the models M_0..M_t on demand (``path``, ``tokenizer``, ``load``, ``logps``)."""

    def __init__(self, cfg: DictConfig, samples: list[SampleRow], model_paths: Sequence[str], batch_size: int = 32,
                 fitted: Path | None = None, journal: Journal | None = None):
        self.cfg, self.samples, self.model_paths = cfg, samples, list(model_paths)
        self.batch_size, self.fitted = batch_size, fitted
        self.journal = journal or Journal(None)  # each model's log-probs, saved as computed (a killed stage's)
        n = sum(len(row.responses) for row in samples)  # (a saved list of another length is not these responses')
        self._logps: dict[int, list[float]] = {r["model"]: r["logps"] for r in self.journal.rows
                                               if len(r["logps"]) == n}
        for k in self._logps:
            log.info("log-probs of M%d: read from %s (saved before the stage was stopped)", k, self.journal.path)

    @cached_property
    def _encoded(self) -> tuple[list[list[int]], list[int], int]:
        m = self.cfg.model
        tok = self.tokenizer(len(self.model_paths) - 1)  # M_t's; every M_k shares the tokenizer of M0
        enc = [encode_pair(tok, row.prompt, r, int(m.max_length), int(m.max_prompt_length))
               for row in self.samples for r in row.responses]
        return [e[0] for e in enc], [e[1] for e in enc], tok.pad_token_id

    @property
    def seqs(self) -> list[list[int]]:
        """Token ids of prompt + response + end of turn, one per response."""
        return self._encoded[0]

    @property
    def starts(self) -> list[int]:
        """Where each response starts in ``seqs``."""
        return self._encoded[1]

    @property
    def pad_id(self) -> int:
        return self._encoded[2]

    @property
    def n_tokens(self) -> list[int]:
        """|y|: the tokens of each response, its end of turn included (as trained and scored)."""
        return [len(s) - st for s, st in zip(self.seqs, self.starts)]

    def path(self, k: int) -> str:
        return self.model_paths[k]

    def tokenizer(self, k: int):
        return load_tokenizer(self.path(k), self.cfg.model.trust_remote_code)

    def load(self, k: int):
        """M_k on the inference device, in ``inference.reward_dtype`` (the caller drops it when done; ``free``
        collects it)."""
        model = on_device(load_model(self.path(k), self.cfg.model.dtype, self.cfg.model.trust_remote_code), self.cfg)
        return for_inference(model, OmegaConf.select(self.cfg, "inference.reward_dtype"), "inference.reward_dtype")

    @staticmethod
    def free() -> None:
        gc.collect()

    def logps(self, k: int) -> list[float]:
        """log pi_{M_k}(y|x) of every response, summed over its tokens (computed once per k)."""
        if k not in self._logps:
            model = self.load(k)
            self._logps[k] = score_sequences(model, self.seqs, self.starts, self.pad_id, batch_size=self.batch_size,
                                             desc=f"score M{k}")
            del model
            self.free()
            self.journal.add({"model": k, "logps": self._logps[k]})
        return self._logps[k]

    def normalized_loglik(self, k: int) -> list[float]:
        """log pi_{M_k}(y|x) / |y|: the ranking of a model that has no reward of its own (M0 at t = 1)."""
        return [lp / n for lp, n in zip(self.logps(k), self.n_tokens)]

    def per_prompt(self, values: Sequence) -> list[list]:
        """Split one value per response into one list per prompt."""
        out, i = [], 0
        for row in self.samples:
            n = len(row.responses)
            out.append(list(values[i:i + n]))
            i += n
        return out


class Rewarder:
    """Scores responses with a model.  Subclasses implement ``score``; the rest are optional hooks."""

    scores_base: bool = True      # can M0 rank responses with this rewarder (else: the stage's M0 fallback)
    trains: bool = False          # has something to ``fit`` once from M1 (its own stage, after SFT)
    trains_with_policy: bool = False  # takes part in SFT (its config is then part of the SFT stage's)

    def __init__(self, batch_size: int = 32):
        self.batch_size = int(batch_size)

    def score(self, inputs: RewardInputs, k: int) -> Scores:
        """M_k's score of every response (M_t's: the reward; M_{t-1}'s: for consistency)."""
        raise NotImplementedError

    def previous_score(self, inputs: RewardInputs, k: int) -> Scores:
        """M_{t-1}'s ranking of the same responses, for consistency (the same scoring, unless overridden)."""
        return self.score(inputs, k)

    # ---- optional training hooks
    def fit(self, cfg: DictConfig, m1_path: str, out: Path) -> dict | None:
        """With ``trains``: train what this rewarder needs from M1 (at ``m1_path``) into ``out``; its summary."""
        return None

    def sft_module(self, model, seed: int, **optim):
        return None

    def after_sft(self, module, model_dir: Path) -> None:
        return None

    def after_dpo(self, src_model_dir: str | Path, dst_model_dir: Path) -> None:
        return None
