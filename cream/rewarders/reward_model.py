"""An external Bradley-Terry reward model (``rewarder=reward_model``): the oracle-RM baseline.

    reward(x, y)      = RM(x, y), the scalar of a reward model trained with ``cream-train-rm``
    prev_reward(x, y) = M_{t-1}'s own implicit reward, as in ``implicit.py``:
                        log pi_{t-1}(y|x) - log pi_0(y|x), or log pi_0(y|x) / |y| when M_{t-1} = M0

The previous-model score is deliberately *not* the RM again (the same RM would agree with itself,
C = 1 always, and CREAM's regularizer would be a no-op): the consistency stage then measures how far
the external ranking agrees with what the previous policy itself prefers, which is the quantity CREAM
regularizes with.

``path`` is a folder written by ``cream-train-rm``, or a standard transformers
``AutoModelForSequenceClassification`` reward model (``num_labels = 1``; e.g. trained with TRL's
RewardTrainer), which scores the question rendered with its own tokenizer's chat template.  ``path: null`` trains a
quick one inside the pipeline, so the baseline runs anywhere (the smoke sweep too): on pairs built from the labeled seed
set only (never from the unlabeled pool's labels): chosen = the SFT target (the gold response), rejected =
the same template with a wrong option (multiple choice) or another seed question's solution (GSM8K).
It is trained once, by the pipeline's ``rewarder`` stage right after SFT (its folder: ``<run dir>/rewarder/``),
from the SFT model M1 (``backbone: null``; or a model folder / hub id), and every iteration uses it.
"""
from __future__ import annotations

import random
from pathlib import Path

from cream.data.pool import seed_set
from cream.data.prompts import format_prompt, render, sft_target
from cream.models.loading import load_tokenizer, on_device
from cream.rewarders.base import Rewarder, RewardInputs, Scores
from cream.rewarders.implicit import implicit_reward
from cream.training.rm_module import is_sequence_classifier, load_reward_model
from cream.training.train_rm import RMTraining, score_responses, train_reward_model


def seed_pairs(cfg, tok) -> list[dict]:
    """(prompt, gold response, wrong response) for each labeled seed example."""
    examples = seed_set(cfg)
    rng = random.Random(f"{cfg.seed}-rm-pairs")
    pairs = []
    for ex in examples:
        if ex.is_multiple_choice:
            wrong = rng.choice([lab for lab in ex.labels if lab != ex.answer])
            rejected = f"The answer is {ex.choices[ex.labels.index(wrong)]}.\nAnswer: {wrong}"
        else:
            others = [o for o in examples if not o.is_multiple_choice and o.answer != ex.answer]
            if not others:
                continue
            rejected = sft_target(rng.choice(others))
        pairs.append({"prompt": render(tok, format_prompt(ex)), "chosen": sft_target(ex), "rejected": rejected})
    return pairs


class RewardModelRewarder(Rewarder):
    scores_base = False  # M_{t-1}'s side is its implicit reward: M0 has none (the stage's fallback)

    def __init__(self, path: str | None = None, batch_size: int = 32, backbone: str | None = None,
                 train: dict | None = None):
        super().__init__(batch_size)
        self.path, self.backbone = path, backbone
        self.train = dict(train or {})
        self.trains = path is None  # train a quick RM once, from M1, in the pipeline's ``rewarder`` stage

    def fit(self, cfg, m1_path: str, out: Path) -> dict:
        """The quick RM (``path: null``): trained on seed-set pairs from ``backbone`` (null: M1) into ``out``."""
        backbone = self.backbone or m1_path
        pairs = seed_pairs(cfg, load_tokenizer(backbone, cfg.model.trust_remote_code))
        return train_reward_model(
            backbone, pairs, out, **vars(RMTraining.of(self.train, "rewarder.train")), max_length=cfg.model.max_length,
            max_prompt_length=cfg.model.max_prompt_length, seed=cfg.seed, accelerator=cfg.trainer.accelerator,
            precision=cfg.trainer.precision, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code)

    def score(self, inputs: RewardInputs, k: int) -> Scores:
        """RM(x, y) of every response (the RM's own judgment: the same whichever M_k sampled them)."""
        cfg = inputs.cfg
        where = Path(self.path) if self.path is not None else inputs.fitted
        rm = on_device(load_reward_model(where, cfg.model.dtype, cfg.model.trust_remote_code), cfg)
        rm_tok = load_tokenizer(where, cfg.model.trust_remote_code)
        own_template = is_sequence_classifier(where) and getattr(rm_tok, "chat_template", None)
        # a transformers RM reads the question in its own chat template; ours shares the policy's
        prompts = [render(rm_tok, row.instruction) if own_template and row.instruction is not None else row.prompt
                   for row in inputs.samples for _ in row.responses]
        responses = [r for row in inputs.samples for r in row.responses]
        reward = score_responses(rm, rm_tok, prompts, responses, max_length=cfg.model.max_length,
                                 max_prompt_length=cfg.model.max_prompt_length, batch_size=self.batch_size)
        del rm
        inputs.free()
        return Scores(reward)

    def previous_score(self, inputs: RewardInputs, k: int) -> Scores:
        """M_{t-1}'s own implicit reward (see the module docstring: not the RM again)."""
        return implicit_reward(inputs, k)
