"""CREAM's rewarder: the DPO implicit reward of the policy against the base model.

    r_t(x, y) = log pi_t(y|x) - log pi_0(y|x)         (sums over response tokens)

The previous model M_{t-1} scores the same responses the same way; when M_{t-1} is M0 itself it has no
reference, and its score is the length-normalized log-likelihood  log pi_0(y|x) / |y|.
"""
from __future__ import annotations

import gc

from cream.models.loading import load_model, load_tokenizer, on_device
from cream.models.scoring import score_sequences
from cream.models.tokens import encode_pair
from cream.rewarders import per_prompt


def sequence_logps(ctx, k: int, seqs, starts, batch_size: int) -> list[float]:
    """log pi_{M_k}(y|x) for every encoded (prompt, response)."""
    cfg = ctx.cfg
    model = load_model(ctx.model_path(k), cfg.model.dtype, cfg.model.trust_remote_code)
    model = on_device(model, cfg)
    pad = load_tokenizer(ctx.model_path(k)).pad_token_id
    out = score_sequences(model, seqs, starts, pad, batch_size=batch_size, desc=f"score M{k}")
    del model
    gc.collect()
    return out


def encode_samples(ctx, tok, samples: list[dict]):
    """Every (prompt, response) of ``samples`` encoded with the rule the DPO step uses too."""
    m = ctx.cfg.model
    enc = [encode_pair(tok, row["prompt"], r, int(m.max_length), int(m.max_prompt_length))
           for row in samples for r in row["responses"]]
    return [e[0] for e in enc], [e[1] for e in enc], sum(e[2] for e in enc)


class ImplicitRewarder:
    def __init__(self, batch_size: int = 32):
        self.batch_size = batch_size

    def score(self, ctx, t: int, samples: list[dict]) -> list[dict]:
        tok = load_tokenizer(ctx.model_path(t), ctx.cfg.model.trust_remote_code)
        seqs, starts, n_trunc = encode_samples(ctx, tok, samples)
        n_tokens = [len(s) - st for s, st in zip(seqs, starts)]
        policy = sequence_logps(ctx, t, seqs, starts, self.batch_size)
        base = sequence_logps(ctx, 0, seqs, starts, self.batch_size)
        if t == 1:  # M_{t-1} = M0: no reference, length-normalized log-likelihood
            prev = [b / n for b, n in zip(base, n_tokens)]
        else:
            prev_lp = sequence_logps(ctx, t - 1, seqs, starts, self.batch_size)
            prev = [p - b for p, b in zip(prev_lp, base)]
        reward = [p - b for p, b in zip(policy, base)]
        return per_prompt(samples, reward=reward, prev_reward=prev, policy_logp=policy, base_logp=base, n_tokens=n_tokens)
