"""LLM-as-a-Judge (Self-Rewarding Language Models, Yuan et al. 2024): the SRLM baseline's rewarder.

The model judges each response with the paper's additive 5-point prompt
(``templates/judge_additive_5pt.txt``), which asks for a short justification ending in
"Score: <total points>" (``max_new_tokens`` >= 256 leaves room for both).  Each response gets ``k``
sampled judgments; a judgment without a parsable total score in [0, 5] (``parse_score``) is counted as
a failure and left out; the reward is the mean of the valid ones.

A response none of whose ``k`` judgments parses is, with ``forced_score=false`` (the paper), unscored
(``None``: left out of consistency and pairs; if that happens to every prompt the pairs stage stops with
NoPairsError).  With ``forced_score=true`` (the default) the judge is instead asked for the score
directly: its first judgment is followed by "Score:" and the reward is the expected score under the
judge's own distribution over the continuations " 0" .. " 5" (G-Eval style, Liu et al. 2023).  This is
still the model's judgment, never a made-up number; how often it was needed is recorded per prompt
(``judge_forced``) and in the reward-quality metrics (``n_forced``), next to the parse-failure rate.
A small model that has never learned the "Score: N" format (the tiny smoke model) lives on it.

M_{t-1} judges the same responses the same way, for consistency (M0 too: it is an instruct model).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from cream.data.prompts import render
from cream.models.scoring import score_sequences
from cream.models.tokens import encode_prompt
from cream.rewarders.base import Rewarder, RewardInputs, Scores
from cream.sampling.hf import generate

TEMPLATE = Path(__file__).parent / "templates" / "judge_additive_5pt.txt"

_NUMBER = r"(-?\d+(?:\.\d+)?)\s*(?:points?\b\s*)?(/\s*\d+|out of\s*\d+)?"
_SCORE = re.compile(r"score\s*(?:is|of|=|:)?\s*[*_\s]*" + _NUMBER, re.IGNORECASE)
_TOTAL = re.compile(r"total(?:\s+(?:points?|score))?\s*(?:is|of|=|:)?\s*[*_\s]*" + _NUMBER, re.IGNORECASE)
_OUT_OF_5 = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/\s*5\b|out of 5\b)", re.IGNORECASE)


def render_judge_prompt(instruction: str, response: str, template: str | None = None) -> str:
    """The judge prompt with the user's instruction and the response in place."""
    text = template if template is not None else TEMPLATE.read_text(encoding="utf-8")
    return text.replace("{instruction}", instruction.strip()).replace("{response}", response.strip())


def parse_score(text: str) -> float | None:
    """The judge's TOTAL score in one judgment, or None: the total or nothing, never a per-criterion line.

    The last statement of the total wins: "Score: X" (also "Score: 4/5", "score of 4", "Score: **4**",
    "The score is 2") or "Total points: X" / "Total: X points" / "total score of X".  Without one, the
    last "X/5" or "X out of 5".  Per-criterion lines of the additive prompt ("- Relevance (1 point)",
    "This gets 0 points for clarity") are never read: a judgment that only scores criteria, without a
    total, gives None.  A value outside [0, 5], or a fraction not out of 5, gives None.
    """
    hits = sorted([*_SCORE.finditer(text), *_TOTAL.finditer(text)], key=lambda m: m.end())
    if hits:
        value, denom = hits[-1].group(1), hits[-1].group(2)
        if denom and not denom.replace(" ", "").endswith("5"):
            return None
    else:
        hits = list(_OUT_OF_5.finditer(text))
        if not hits:
            return None
        value = hits[-1].group(1)
    score = float(value)
    return score if 0 <= score <= 5 else None


def aggregate(judgments: list[str]) -> tuple[float | None, int, list[float | None]]:
    """(mean of the valid scores or None, number of unparsable judgments, the parsed scores)."""
    scores = [parse_score(j) for j in judgments]
    valid = [s for s in scores if s is not None]
    return (sum(valid) / len(valid) if valid else None), len(scores) - len(valid), scores


class JudgeRewarder(Rewarder):
    def __init__(self, k: int = 3, temperature: float = 0.7, top_p: float = 0.9, max_new_tokens: int = 256,
                 batch_size: int = 16, template: str | None = None, forced_score: bool = True):
        super().__init__(batch_size)
        if k < 1:
            raise ValueError(f"rewarder.k={k}: must be >= 1")
        self.k, self.temperature, self.top_p, self.max_new_tokens = k, temperature, top_p, max_new_tokens
        self.template = Path(template).read_text(encoding="utf-8") if template else None
        self.forced_score = bool(forced_score)

    def score(self, inputs: RewardInputs, k: int) -> Scores:
        """M_k judges every response k times; the reward is the mean valid score (or the forced one)."""
        cfg = inputs.cfg
        tok, model = inputs.tokenizer(k), inputs.load(k)
        question = [row.prompt if row.instruction is None else row.instruction for row in inputs.samples]
        prompts = [render(tok, render_judge_prompt(q, r, self.template))
                   for q, row in zip(question, inputs.samples) for r in row.responses]
        outs, _ = generate(model, tok, prompts, n=self.k, max_new_tokens=self.max_new_tokens,
                           temperature=self.temperature, top_p=self.top_p, batch_size=self.batch_size,
                           seed=cfg.seed * 7919 + k,
                           max_prompt_length=cfg.model.max_length, desc=f"judge M{k}")
        agg = [aggregate(o) for o in outs]
        forced: list[float | None] = [None] * len(agg)
        if self.forced_score:
            todo = [j for j, a in enumerate(agg) if a[0] is None]
            if todo:
                values = expected_scores(model, tok, [prompts[j] + outs[j][0].rstrip() + "\nScore:" for j in todo],
                                         max_length=cfg.model.max_length + self.max_new_tokens,
                                         batch_size=self.batch_size)
                for j, v in zip(todo, values):
                    forced[j] = v
        del model
        inputs.free()
        means = [a[0] if f is None else f for a, f in zip(agg, forced)]
        per = inputs.per_prompt
        return Scores(means, {"judge_scores": per([a[2] for a in agg]),
                              "judge_failures": [sum(x) for x in per([a[1] for a in agg])],
                              "judge_total": [self.k * len(x) for x in per(means)], "judge_forced": per(forced)})


SCORES = (0, 1, 2, 3, 4, 5)


def expected_scores(model, tok, prefixes: list[str], *, max_length: int, batch_size: int = 16) -> list[float]:
    """For each judge text ending in "Score:", the expected score sum_s s p(s) with p the model's
    probabilities of the continuations " 0" .. " 5", renormalized over those six."""
    seqs, starts = [], []
    for text in prefixes:
        p, _ = encode_prompt(tok, text, max_length)
        for s in SCORES:
            seqs.append(p + tok(f" {s}", add_special_tokens=False)["input_ids"])
            starts.append(len(p))
    lps = score_sequences(model, seqs, starts, tok.pad_token_id, batch_size=batch_size, desc="forced score",
                          progress=False)
    out = []
    for j in range(len(prefixes)):
        lp = torch.tensor(lps[j * len(SCORES): (j + 1) * len(SCORES)], dtype=torch.float64)
        out.append(float((torch.softmax(lp, 0) * torch.tensor(SCORES, dtype=torch.float64)).sum()))
    return out
