"""The implicit reward r_t = log pi_t - log pi_0 and the previous model's scores, against direct sums."""
import shutil

import pytest
import torch

from conftest import compose, direct_logp
from cream.models.loading import load_model, load_tokenizer
from cream.models.tokens import encode_pair
from cream.pipeline import Context
from cream.records import SampleRow
from cream.rewarders.base import RewardInputs
from cream.rewarders.implicit import ImplicitRewarder
from cream.stages.reward import reward_rows


def _perturbed_copy(src, dst, seed):
    shutil.copytree(src, dst)
    model = load_model(dst)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    model.save_pretrained(dst)


@pytest.fixture
def run_dir(tmp_path, tiny_dir):
    shutil.copytree(tiny_dir, tmp_path / "base" / "model")
    _perturbed_copy(tiny_dir, tmp_path / "sft" / "model", 1)         # M1
    _perturbed_copy(tiny_dir, tmp_path / "iter_1" / "dpo" / "model", 2)  # M2
    return tmp_path


SAMPLES = [
    {"prompt_id": "p1", "prompt": "Which gas do plants take in?\n",
     "responses": ["carbon dioxide", "oxygen", "B", "Answer: B"]},
    {"prompt_id": "p2", "prompt": "Natalia sold 48 clips.\n", "responses": ["72", "Answer: 72", "24 clips"]},
]


@pytest.mark.parametrize("t", [1, 2])
def test_implicit_reward_matches_direct_sums(run_dir, t):
    cfg = compose(["model.max_length=128", "model.max_prompt_length=64"])
    ctx = Context(cfg, run_dir)
    inputs = RewardInputs(cfg, [SampleRow.from_json(s) for s in SAMPLES], [ctx.model_path(k) for k in range(t + 1)],
                          batch_size=3)
    rows = [r.to_json() for r in reward_rows(ImplicitRewarder(batch_size=3), inputs, t)]
    tok = load_tokenizer(run_dir / "base" / "model")
    models = {k: load_model(ctx.model_path(k)).eval() for k in (0, 1, 2)}
    for sample, row in zip(SAMPLES, rows):
        for j, resp in enumerate(sample["responses"]):
            ids, start, _ = encode_pair(tok, sample["prompt"], resp, 128, 64)
            lp = {k: direct_logp(m, ids, start) for k, m in models.items()}
            assert row["reward"][j] == pytest.approx(lp[t] - lp[0], abs=1e-4)
            assert row["ref_logp"][j] == pytest.approx(lp[t], abs=1e-4)
            if t == 1:  # previous model is M0: length-normalized log-likelihood
                assert row["prev_reward"][j] == pytest.approx(lp[0] / (len(ids) - start), abs=1e-5)
            else:
                assert row["prev_reward"][j] == pytest.approx(lp[t - 1] - lp[0], abs=1e-4)


def test_first_consistency_same_scale_and_length_controls(run_dir):
    """same_scale: at t = 1 M0's side is log pi_0 summed (as the summed reward), then length-controlled as the
    reward is; at t = 2 both sides are rewards and get the same control; unfinished responses lose both."""
    from cream.stages.reward import controlled

    cfg = compose(["model.max_length=128", "model.max_prompt_length=64"])
    ctx = Context(cfg, run_dir)
    samples = [SampleRow.from_json(dict(s, finished=[True, False, True, True][: len(s["responses"])])) for s in SAMPLES]
    inputs = RewardInputs(cfg, samples, [ctx.model_path(k) for k in range(2)], batch_size=3)
    official_rows = reward_rows(ImplicitRewarder(batch_size=3), inputs, 1)
    same_rows = reward_rows(ImplicitRewarder(batch_size=3), inputs, 1, same_scale=True)
    official, same = [r.to_json() for r in official_rows], [r.to_json() for r in same_rows]
    for o, s in zip(official, same):
        assert s["reward"] == o["reward"]
        assert s["prev_reward"] == pytest.approx(s["base_logp"])  # summed log pi_0
        assert o["prev_reward"] == pytest.approx([b / n for b, n in zip(o["base_logp"], o["n_tokens"])])
    rows, summary = controlled(same_rows, samples, {"length": "penalty", "length_alpha": 0.1, "drop_truncated": True},
                               prev_is_reward=True)
    rows = [r.to_json() for r in rows]
    assert summary == {"length_alpha": 0.1, "n_truncated_dropped": 2, "n_prompts_lt2": 0}
    for row, s in zip(rows, same):
        for j, n in enumerate(s["n_tokens"]):
            if j == 1:  # unfinished: no score on either side
                assert row["reward"][j] is None and row["prev_reward"][j] is None
            else:
                assert row["reward"][j] == pytest.approx(s["reward"][j] - 0.1 * n)
                assert row["prev_reward"][j] == pytest.approx(s["base_logp"][j] - 0.1 * n)
        assert row["raw_reward"] == s["reward"] and row["prev_raw_reward"] == s["prev_reward"]
    # official at t = 1: M0's per-token log-likelihood is not a reward and is left as it is
    rows, _ = controlled(official_rows, samples, {"length": "per_token"}, prev_is_reward=False)
    rows = [r.to_json() for r in rows]
    assert [r["prev_reward"] for r in rows] == [o["prev_reward"] for o in official]
    assert rows[0]["reward"][0] == pytest.approx(official[0]["reward"][0] / official[0]["n_tokens"][0])
    assert controlled(official_rows, samples, None, prev_is_reward=False) == (official_rows, {})  # off: untouched
    # on disk the raw rewards sit among the rewarder's columns, before ref_logp
    assert list(rows[0])[:5] == ["prompt_id", "reward", "prev_reward", "base_logp", "raw_reward"]
