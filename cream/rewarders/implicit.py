"""CREAM's rewarder: the DPO implicit reward of the policy against the base model.

    r_k(x, y) = log pi_k(y|x) - log pi_0(y|x)         (sums over response tokens)

M0 has no reward of its own (r_0 = 0 for every response), so at t = 1 the reward stage ranks M_{t-1} = M0's
side by log pi_0(y|x) / |y| (``scores_base = False``).
"""
from __future__ import annotations

from cream.rewarders.base import Rewarder, RewardInputs, Scores


def implicit_reward(inputs: RewardInputs, k: int) -> Scores:
    """log pi_k - log pi_0 of every response, with log pi_0 as a column of rewards.jsonl."""
    policy, base = inputs.logps(k), inputs.logps(0)
    return Scores([p - b for p, b in zip(policy, base)], {"base_logp": inputs.per_prompt(base)})


class ImplicitRewarder(Rewarder):
    scores_base = False

    def score(self, inputs: RewardInputs, k: int) -> Scores:
        return implicit_reward(inputs, k)
