"""LLM-as-a-Judge (Self-Rewarding Language Models, Yuan et al. 2024): the SRLM baseline's rewarder.

The model judges each response with the paper's additive 5-point prompt
(``templates/judge_additive_5pt.txt``), which asks for a short justification ending in
"Score: <total points>".  Each response gets ``k`` sampled judgments; a judgment without a parsable
score in [0, 5] is counted as a failure and left out; the reward is the mean of the valid ones, and a
response with none is unscored (``None``: left out of consistency and pairs).  M_{t-1} judges the same
responses the same way, for consistency.
"""
from __future__ import annotations

import gc
import re
from pathlib import Path

from cream.data.prompts import render
from cream.generation import generate
from cream.models import load_model, load_tokenizer

TEMPLATE = Path(__file__).parent / "templates" / "judge_additive_5pt.txt"

_SCORE = re.compile(r"score\s*(?:is|of|=|:)?\s*[*_\s]*(-?\d+(?:\.\d+)?)\s*(/\s*\d+|out of\s*\d+)?", re.IGNORECASE)
_POINTS = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/\s*5\b|out of 5\b|points?\b)", re.IGNORECASE)


def render_judge_prompt(instruction: str, response: str, template: str | None = None) -> str:
    """The judge prompt with the user's instruction and the response in place."""
    text = template if template is not None else TEMPLATE.read_text(encoding="utf-8")
    return text.replace("{instruction}", instruction.strip()).replace("{response}", response.strip())


def parse_score(text: str) -> float | None:
    """The score of one judgment, or None.

    The last "Score: X" wins (also "Score: 4/5", "score of 4", "Score: **4**"); without one, the last
    "X points" or "X/5".  A value outside [0, 5], or a fraction not out of 5, gives None.
    """
    hits = list(_SCORE.finditer(text))
    if hits:
        value, denom = hits[-1].group(1), hits[-1].group(2)
        if denom and not denom.replace(" ", "").endswith("5"):
            return None
    else:
        hits = list(_POINTS.finditer(text))
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


class JudgeRewarder:
    def __init__(self, k: int = 3, temperature: float = 0.7, top_p: float = 0.9, max_new_tokens: int = 128,
                 batch_size: int = 16, template: str | None = None):
        if k < 1:
            raise ValueError(f"rewarder.k={k}: must be >= 1")
        self.k, self.temperature, self.top_p = k, temperature, top_p
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.template = Path(template).read_text(encoding="utf-8") if template else None

    def judge(self, ctx, k: int, samples: list[dict]) -> list[dict]:
        """M_k's judge scores of every response: per prompt {"means", "failures", "scores"}."""
        cfg = ctx.cfg
        tok = load_tokenizer(ctx.model_path(k), cfg.model.trust_remote_code)
        model = load_model(ctx.model_path(k), cfg.model.dtype, cfg.model.trust_remote_code)
        prompts = [render(tok, render_judge_prompt(row.get("instruction", row["prompt"]), r, self.template))
                   for row in samples for r in row["responses"]]
        outs, _ = generate(model, tok, prompts, n=self.k, max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                           top_p=self.top_p, batch_size=self.batch_size, seed=int(cfg.seed) * 7919 + k,
                           max_prompt_length=int(cfg.model.max_length), desc=f"judge M{k}")
        del model
        gc.collect()
        rows, i = [], 0
        for row in samples:
            agg = [aggregate(o) for o in outs[i: i + len(row["responses"])]]
            i += len(row["responses"])
            rows.append({"means": [a[0] for a in agg], "failures": sum(a[1] for a in agg), "scores": [a[2] for a in agg]})
        return rows

    def score(self, ctx, t: int, samples: list[dict]) -> list[dict]:
        now, prev = self.judge(ctx, t, samples), self.judge(ctx, t - 1, samples)
        return [{"reward": a["means"], "prev_reward": b["means"], "judge_scores": a["scores"],
                 "judge_failures": a["failures"], "judge_total": self.k * len(a["means"]),
                 "prev_judge_failures": b["failures"]} for a, b in zip(now, prev)]
