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
RewardTrainer), which scores the question rendered with its own tokenizer's chat template.  ``path: null`` trains a quick one inside the
pipeline, so the baseline runs anywhere (the smoke sweep too): on pairs built from the labeled seed set
only (never from the unlabeled pool's labels): chosen = the SFT target (the gold response), rejected =
the same template with a wrong option (multiple choice) or another seed question's solution (GSM8K).
It is trained once, in iteration 1's reward folder (``iter_1/reward/reward_model/``), from the SFT
model M1 (``backbone: null``; or a model folder / hub id), and every later iteration reuses it.
"""
from __future__ import annotations

import gc
import random
from pathlib import Path

from cream.models.loading import load_tokenizer, on_device
from cream.rewarders import per_prompt
from cream.rewarders.implicit import encode_samples, sequence_logps


def seed_pairs(cfg, tok) -> list[dict]:
    """(prompt, gold response, wrong response) for each labeled seed example."""
    from cream.data.pool import seed_set
    from cream.data.prompts import format_prompt, render, sft_target

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


class RewardModelRewarder:
    def __init__(self, path: str | None = None, batch_size: int = 32, backbone: str | None = None,
                 train: dict | None = None):
        self.path, self.batch_size, self.backbone = path, int(batch_size), backbone
        self.train = dict(train or {})

    def model_dir(self, ctx, t: int) -> Path:
        """The RM to use: ``path``, or the one trained (at t = 1) in iteration 1's reward folder."""
        if self.path is not None:
            return Path(self.path)
        where = ctx.stage_dir("iter_1/reward") / "reward_model"
        if t == 1 and not (where / "reward_model.json").exists():
            self._train_quick(ctx, where)
        return where

    def _train_quick(self, ctx, out: Path) -> None:
        from cream import artifacts
        from cream.training.train_rm import train_reward_model

        cfg = ctx.cfg
        backbone = self.backbone or ctx.model_path(1)
        tok = load_tokenizer(backbone, cfg.model.trust_remote_code)
        pairs = seed_pairs(cfg, tok)
        tr = self.train
        summary = train_reward_model(
            backbone, pairs, out, epochs=int(tr.get("epochs", 3)), lr=float(tr.get("lr", 1e-4)),
            batch_size=int(tr.get("batch_size", 16)), weight_decay=float(tr.get("weight_decay", 0.0)),
            warmup_ratio=float(tr.get("warmup_ratio", 0.1)), max_length=int(cfg.model.max_length),
            max_prompt_length=int(cfg.model.max_prompt_length), seed=int(cfg.seed),
            accelerator=str(cfg.trainer.accelerator), precision=str(cfg.trainer.precision), dtype=str(cfg.model.dtype),
            trust_remote_code=bool(cfg.model.trust_remote_code))
        artifacts.write_json(out / "train_summary.json", summary)

    def score(self, ctx, t: int, samples: list[dict]) -> list[dict]:
        from cream.data.prompts import render
        from cream.training.rm_module import is_sequence_classifier, load_reward_model
        from cream.training.train_rm import score_responses

        cfg = ctx.cfg
        where = self.model_dir(ctx, t)
        rm = load_reward_model(where, cfg.model.dtype, cfg.model.trust_remote_code)
        rm = on_device(rm, cfg)
        rm_tok = load_tokenizer(where, cfg.model.trust_remote_code)
        own_template = is_sequence_classifier(where) and getattr(rm_tok, "chat_template", None)
        # a transformers RM reads the question in its own chat template; ours shares the policy's
        prompts = [render(rm_tok, row["instruction"]) if own_template and "instruction" in row else row["prompt"]
                   for row in samples for _ in row["responses"]]
        responses = [r for row in samples for r in row["responses"]]
        reward = score_responses(rm, rm_tok, prompts, responses, max_length=int(cfg.model.max_length),
                                 max_prompt_length=int(cfg.model.max_prompt_length), batch_size=self.batch_size)
        del rm
        gc.collect()
        # the previous model's own ranking, for consistency: its implicit reward (see the module docstring)
        tok = load_tokenizer(ctx.model_path(t), cfg.model.trust_remote_code)
        seqs, starts, _ = encode_samples(ctx, tok, samples)
        n_tokens = [len(s) - st for s, st in zip(seqs, starts)]
        base = sequence_logps(ctx, 0, seqs, starts, self.batch_size)
        if t == 1:
            prev = [b / n for b, n in zip(base, n_tokens)]
        else:
            prev = [p - b for p, b in zip(sequence_logps(ctx, t - 1, seqs, starts, self.batch_size), base)]
        return per_prompt(samples, reward=reward, prev_reward=prev, n_tokens=n_tokens)
