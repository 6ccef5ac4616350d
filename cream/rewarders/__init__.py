"""Rewarders: how M_t (and M_{t-1}) score the sampled responses; chosen with ``rewarder=``.

The contract is in ``base.py``: a ``Rewarder`` scores responses with a model M_k (``score``), and the reward
stage does the rest.  ``implicit`` (CREAM's DPO implicit reward), ``judge`` (LLM-as-a-Judge, the SRLM
baseline), ``reward_model`` (an external Bradley-Terry RM) and ``self_reward_head`` (a critic on the policy).
"""
