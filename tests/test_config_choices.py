"""Every loss, regularizer, consistency measure and rewarder is a config choice that instantiates."""
from __future__ import annotations

import pytest
from hydra.utils import instantiate

from conftest import compose
from cream.method import losses, regularizers
from cream.method import ranking as consistency


@pytest.mark.parametrize("name, cls", [("sigmoid", losses.SigmoidLoss), ("ipo", losses.IPOLoss),
                                       ("cdpo", losses.CDPOLoss), ("hinge", losses.HingeLoss)])
def test_losses(name, cls):
    loss = instantiate(compose([f"loss={name}"]).loss)
    assert type(loss) is cls and loss.beta == 0.1
    if name == "cdpo":
        assert loss.eps == 0.1


@pytest.mark.parametrize("name, cls", [("none", regularizers.NoRegularizer),
                                       ("cream_avg", regularizers.DatasetConsistency),
                                       ("cream_dyn", regularizers.PairConsistency),
                                       ("fixed", regularizers.FixedConsistency)])
def test_regularizers(name, cls):
    reg = instantiate(compose([f"regularizer={name}"]).regularizer)
    assert type(reg) is cls
    if name == "fixed":
        assert reg.weights([0.9, None], None) == [0.5, 0.5]


@pytest.mark.parametrize("name", ["kendall", "spearman", "toporder"])
def test_consistency_measures(name):
    measure = instantiate(compose([f"consistency={name}"]).consistency)
    assert measure.func is getattr(consistency, name)
    assert measure([1, 2, 3], [1, 2, 3]) == 1.0 and measure([1, 2, 3], [3, 2, 1]) == 0.0


@pytest.mark.parametrize("name, cls", [
    ("implicit", "cream.rewarders.implicit.ImplicitRewarder"), ("judge", "cream.rewarders.judge.JudgeRewarder"),
    ("reward_model", "cream.rewarders.reward_model.RewardModelRewarder"),
    ("self_reward_head", "cream.rewarders.self_reward_head.SelfRewardHeadRewarder")])
def test_rewarders(name, cls):
    r = instantiate(compose([f"rewarder={name}"]).rewarder)
    assert f"{type(r).__module__}.{type(r).__name__}" == cls and hasattr(r, "score")
