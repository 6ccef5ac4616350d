"""dpo.micro_batch_size: the same optimizer updates as one pass per update, in smaller passes.

11 pairs, updates of 8: one full update and a shorter last one (3 pairs), where Lightning's accumulation alone
would divide by the full count. Every step's gradient (before clipping) must equal the one-pass gradient. The
learning rate is 0, so every step is compared at the same weights: otherwise Adam turns last-digit differences of
near-zero gradient entries into full-size steps, and the second step's gradients differ by more than rounding.
"""
from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conftest import compose
from cream.method.losses import SigmoidLoss
from cream.models.loading import load_model, load_tokenizer
from cream.records import PairRow
from cream.training.datamodules import PreferenceDataModule
from cream.training.dpo_module import DPOModule
from cream.training.plan import make_plan
from cream.training.trainer import fit, make_trainer


class Grads(Callback):
    def __init__(self):
        self.steps = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append(torch.cat([p.grad.flatten().clone() for p in pl_module.parameters() if p.grad is not None]))


def _pairs(n=11):
    # responses of different lengths, so the NLL pooled over an update's tokens differs from a mean of means
    return [PairRow(prompt=f"Question {i}: which gas do plants take in?\n", chosen="carbon dioxide" + " gas" * (i % 4),
                    rejected="oxygen" * (1 + i % 3), ref_logp_chosen=-20.0 - i, ref_logp_rejected=-15.0 + 0.5 * i)
            for i in range(n)]


class Crash(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == 2:  # the first micro-batch of the second update: a kill in the middle of an update
            raise SystemError("simulated kill")


def _train(tiny_dir, out, batch_size, accumulate, micro, rpo_alpha, lr=0.0, crash=False):
    cfg = compose([f"trainer.accumulate_grad_batches={accumulate}", "trainer.gradient_clip_val=null",
                   "trainer.cream.checkpoint_every_n_steps=1"])
    L.seed_everything(0, verbose=False)
    tok, model = load_tokenizer(tiny_dir), load_model(tiny_dir)
    pairs = _pairs()
    weights = [0.2 + 0.07 * i for i in range(len(pairs))]  # the per-pair C of cream_dyn
    dm = PreferenceDataModule(tok, pairs, weights, batch_size=batch_size, max_length=64, max_prompt_length=32,
                              seed=3, micro_batch_size=micro, accumulate=accumulate)
    module = DPOModule(model, SigmoidLoss(beta=0.1), lr=lr, rpo_alpha=rpo_alpha,
                       total_steps=dm.steps(1, accumulate))
    trainer = make_trainer(cfg, out, max_epochs=1, accumulate=dm.micro_accumulate())
    grads = Grads()
    trainer.callbacks[:0] = [grads, *([Crash()] if crash else [])]
    fit(trainer, module, dm, out)
    return grads.steps, trainer


@pytest.mark.parametrize("rpo_alpha", [None, 0.7])
@pytest.mark.parametrize("batch_size, accumulate, micro", [(8, 1, 2), (8, 1, 1), (4, 2, 2), (4, 2, 4)])
def test_micro_batches_give_the_one_pass_gradients(tiny_dir, tmp_path, rpo_alpha, batch_size, accumulate, micro):
    want, _ = _train(tiny_dir, tmp_path / "one", 8, 1, None, rpo_alpha)
    got, trainer = _train(tiny_dir, tmp_path / "micro", batch_size, accumulate, micro, rpo_alpha)
    assert trainer.accumulate_grad_batches == accumulate * batch_size // micro
    assert len(want) == len(got) == trainer.global_step == 2
    for step, (w, g) in enumerate(zip(want, got)):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7, msg=f"step {step}")


def test_lightning_accumulation_alone_misweights_the_last_update(tiny_dir, tmp_path):
    """Why the micro-batches carry their update's size: batches of 4 accumulated in twos without it give the
    short last update (3 pairs) 1/2 of its mean gradient, so the comparison above can tell the two apart."""
    want, _ = _train(tiny_dir, tmp_path / "one", 8, 1, None, None)
    got, _ = _train(tiny_dir, tmp_path / "acc", 4, 2, None, None)
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got[1], want[1] / 2, rtol=1e-4, atol=1e-7)


def test_a_run_killed_mid_update_resumes_on_the_right_micro_batch(tiny_dir, tmp_path):
    """Batches of 4 pairs in micro-batches of 2: 11 pairs make 3 updates (4, 4 and 3 pairs) of 2 passes each. Killed
    in update 2, the run resumes from update 1's checkpoint and computes updates 2 and 3 exactly as before."""
    want, _ = _train(tiny_dir, tmp_path / "ref", 4, 1, 2, None, lr=1e-2)
    with pytest.raises(SystemError):
        _train(tiny_dir, tmp_path / "run", 4, 1, 2, None, lr=1e-2, crash=True)
    got, trainer = _train(tiny_dir, tmp_path / "run", 4, 1, 2, None, lr=1e-2)
    assert trainer.global_step == 3 and len(want) == 3 and len(got) == 2  # the resumed attempt ran updates 2 and 3
    for step, (w, g) in enumerate(zip(want[1:], got), start=1):
        torch.testing.assert_close(g, w, rtol=0, atol=0, msg=f"step {step}")


def test_micro_batches_as_large_as_the_batch_are_one_pass(tiny_dir, tmp_path):
    from cream.config import validate_config

    validate_config(compose(["dpo.batch_size=2", "dpo.micro_batch_size=4"]))  # e.g. the SmolLM2 preset's 4
    want, _ = _train(tiny_dir, tmp_path / "one", 8, 1, None, None)
    got, trainer = _train(tiny_dir, tmp_path / "big", 4, 2, 16, None)  # passes of 4, two per update
    assert trainer.accumulate_grad_batches == 2
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)


def test_the_plan_counts_one_micro_batch():
    whole = make_plan(compose(["dpo.batch_size=8"])).stages["dpo"]
    micro = make_plan(compose(["dpo.batch_size=8", "dpo.micro_batch_size=2"])).stages["dpo"]
    assert (whole["rows"], micro["rows"]) == (16, 4) and micro["scored"] * 4 == whole["scored"]
    assert micro["memory"]["activations"] < whole["memory"]["activations"]
