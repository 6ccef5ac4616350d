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
    {"prompt_id": "p1", "prompt": "Which gas do plants take in?\n", "responses": ["carbon dioxide", "oxygen", "B", "Answer: B"]},
    {"prompt_id": "p2", "prompt": "Natalia sold 48 clips.\n", "responses": ["72", "Answer: 72", "24 clips"]},
]


@pytest.mark.parametrize("t", [1, 2])
def test_implicit_reward_matches_direct_sums(run_dir, t):
    cfg = compose(["model.max_length=128", "model.max_prompt_length=64"])
    ctx = Context(cfg, run_dir)
    inputs = RewardInputs(cfg, [SampleRow.from_json(s) for s in SAMPLES], [ctx.model_path(k) for k in range(t + 1)], batch_size=3)
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
