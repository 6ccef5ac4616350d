"""Config presets: the SRLM judge as the Self-Rewarding paper runs it."""
from conftest import compose


def test_judge_srlm_preset():
    judge, srlm = compose(["rewarder=judge"]).rewarder, compose(["rewarder=judge_srlm"]).rewarder
    assert srlm._target_ == judge._target_ == "cream.rewarders.judge.JudgeRewarder"
    assert srlm.forced_score is False and judge.forced_score is True  # unparsable judgments stay unscored
    assert srlm.max_new_tokens >= 512  # room for the justification and the score line
    assert {k: v for k, v in srlm.items() if k not in ("forced_score", "max_new_tokens")} == \
        {k: v for k, v in judge.items() if k not in ("forced_score", "max_new_tokens")}  # the rest is judge.yaml's
