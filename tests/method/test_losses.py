"""cream.method.losses: each pair loss against hand-computed numbers and independent formulas, CREAM's weighting."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cream.method.losses import CDPOLoss, HingeLoss, IPOLoss, PreferenceLoss, SigmoidLoss

LOSSES = [SigmoidLoss, IPOLoss, CDPOLoss, HingeLoss]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def ref_pair_loss(cls: type, beta: float, h: float, eps: float = 0.1) -> float:
    """Independent scalar formulas (math module only)."""
    if cls is SigmoidLoss:
        return -math.log(sig(beta * h))
    if cls is IPOLoss:
        return (h - 1 / (2 * beta)) ** 2
    if cls is CDPOLoss:
        return -(1 - eps) * math.log(sig(beta * h)) - eps * math.log(sig(-beta * h))
    if cls is HingeLoss:
        return max(0.0, 1 - beta * h)
    raise AssertionError(cls)


def pair(h: list[float]) -> tuple[torch.Tensor, ...]:
    """Log-probs whose log-ratio difference is h (with arbitrary non-zero reference values)."""
    h_t = torch.tensor(h, dtype=torch.float64)
    rc = torch.full_like(h_t, -12.0)
    rr = torch.full_like(h_t, -9.5)
    pr = torch.full_like(h_t, -10.0)
    pc = h_t + rc + (pr - rr)
    return pc, pr, rc, rr


def test_hand_computed_values():
    pc, pr, rc, rr = pair([2.0])
    # -log sigmoid(0.2) = log(1 + e^-0.2)
    assert SigmoidLoss(0.1)(pc, pr, rc, rr)[0].item() == pytest.approx(0.598138869381541, abs=1e-6)
    # (2 - 1/0.2)^2 = (2 - 5)^2 = 9
    assert IPOLoss(0.1)(pc, pr, rc, rr)[0].item() == pytest.approx(9.0, abs=1e-5)
    # 0.9 * 0.598138869 + 0.1 * log(1 + e^0.2) = 0.9 * 0.598138869 + 0.1 * 0.798138869
    assert CDPOLoss(0.1, 0.1)(pc, pr, rc, rr)[0].item() == pytest.approx(0.618138869381541, abs=1e-6)
    # max(0, 1 - 0.2) = 0.8 ; for h = 20 -> 0
    assert HingeLoss(0.1)(pc, pr, rc, rr)[0].item() == pytest.approx(0.8, abs=1e-6)
    assert HingeLoss(0.1)(*pair([20.0]))[0].item() == 0.0
    # sigmoid with C = 0.3 at beta h = 0.2: 0.3 * 0.598138869 + 0.7 * 0.798138869 = 0.738138869
    assert SigmoidLoss(0.1)(pc, pr, rc, rr, 0.3)[0].item() == pytest.approx(0.738138869381541, abs=1e-6)


@pytest.mark.parametrize("cls", LOSSES)
@pytest.mark.parametrize("c", [0.0, 0.3, 1.0])
def test_regularized_loss_matches_formula(cls, c):
    hs = [-7.0, -1.3, 0.0, 0.4, 2.0, 15.0]
    loss = cls(beta=0.2)
    got, _ = loss(*pair(hs), torch.full((len(hs),), c))
    want = [c * ref_pair_loss(cls, 0.2, h) + (1 - c) * ref_pair_loss(cls, 0.2, -h) for h in hs]
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("cls", LOSSES)
def test_c0_equals_swapped_and_c1_equals_plain(cls):
    pc, pr, rc, rr = pair([-3.0, 0.5, 4.0])
    loss = cls(beta=0.1)
    swapped, _ = loss(pr, pc, rr, rc, 1.0)
    assert torch.allclose(loss(pc, pr, rc, rr, 0.0)[0], swapped)
    h = torch.tensor([-3.0, 0.5, 4.0])
    assert torch.allclose(loss(pc, pr, rc, rr)[0], loss.pair_loss(h), atol=1e-6)


def test_sigmoid_c1_is_standard_dpo_and_cdpo_eps0_is_sigmoid():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(16, generator=g) * 5 - 20 for _ in range(4))
    h = (pc - rc) - (pr - rr)
    assert torch.allclose(SigmoidLoss(0.1)(pc, pr, rc, rr)[0], -F.logsigmoid(0.1 * h), atol=1e-6)
    w = torch.rand(16, generator=g)
    assert torch.allclose(CDPOLoss(0.1, label_smoothing=0.0)(pc, pr, rc, rr, w)[0],
                          SigmoidLoss(0.1)(pc, pr, rc, rr, w)[0])


def test_cdpo_with_c_equals_sigmoid_with_mixed_weight():
    """C l_eps(h) + (1-C) l_eps(-h) = sigmoid loss with weight C(1-eps) + (1-C)eps (linear in the weight)."""
    pc, pr, rc, rr = pair([-2.0, 0.0, 3.0])
    c, eps = 0.7, 0.2
    got = CDPOLoss(0.5, eps)(pc, pr, rc, rr, c)[0]
    want = SigmoidLoss(0.5)(pc, pr, rc, rr, c * (1 - eps) + (1 - c) * eps)[0]
    assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("m", [-3.0, -0.5, 0.0, 0.7, 4.0])
@pytest.mark.parametrize("c", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_sigmoid_gradient_wrt_margin(m, c):
    beta = 0.1
    h = torch.tensor([m / beta], requires_grad=True)
    zeros = torch.zeros(1)
    loss, _ = SigmoidLoss(beta)(h, zeros, zeros, zeros, c)
    loss.sum().backward()
    dl_dm = h.grad.item() / beta  # dL/dh = beta dL/dm
    assert dl_dm == pytest.approx(sig(m) - c, abs=1e-5)


def test_sigmoid_c_half_symmetric_min_log2():
    loss = SigmoidLoss(0.1)
    zeros = torch.zeros(1)
    at0 = loss(zeros, zeros, zeros, zeros, 0.5)[0].item()
    assert at0 == pytest.approx(math.log(2), abs=1e-7)
    for m in [0.01, 0.5, 2.0, 10.0]:
        plus = loss(*pair([m / 0.1]), 0.5)[0].item()
        minus = loss(*pair([-m / 0.1]), 0.5)[0].item()
        assert plus == pytest.approx(minus, abs=1e-6)
        assert plus >= math.log(2)


def test_metrics():
    pc = torch.tensor([-10.0, -20.0])
    pr = torch.tensor([-12.0, -15.0])
    rc = torch.tensor([-11.0, -18.0])
    rr = torch.tensor([-11.5, -16.0])
    _, m = SigmoidLoss(0.5)(pc.requires_grad_(), pr.requires_grad_(), rc, rr)
    assert set(m) == {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                      "logps/chosen", "logps/rejected"}
    assert m["rewards/chosen"].tolist() == pytest.approx([0.5, -1.0])   # 0.5 * (-10 + 11), 0.5 * (-20 + 18)
    assert m["rewards/rejected"].tolist() == pytest.approx([-0.25, 0.5])  # 0.5 * (-12 + 11.5), 0.5 * (-15 + 16)
    assert m["rewards/margins"].tolist() == pytest.approx([0.75, -1.5])
    assert m["rewards/accuracies"].tolist() == [1.0, 0.0]
    assert m["logps/chosen"].tolist() == [-10.0, -20.0]
    assert m["logps/rejected"].tolist() == [-12.0, -15.0]
    assert all(v.shape == (2,) and not v.requires_grad for v in m.values())


@pytest.mark.parametrize("cls", LOSSES)
def test_bf16_inputs_computed_in_float32(cls):
    pc, pr, rc, rr = (t.to(torch.bfloat16) for t in pair([1.0, -2.0]))
    w = torch.tensor([0.4, 0.9], dtype=torch.bfloat16)
    got, m = cls(0.1)(pc, pr, rc, rr, w)
    assert got.dtype == torch.float32 and m["rewards/chosen"].dtype == torch.float32
    want, _ = cls(0.1)(pc.float(), pr.float(), rc.float(), rr.float(), w.float())
    assert torch.allclose(got, want)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_weight_validation(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SigmoidLoss(0.1)(*pair([1.0, 2.0]), torch.tensor([0.5, bad]))


@pytest.mark.parametrize("cls", LOSSES)
@pytest.mark.parametrize("beta", [0.0, -0.5])
def test_beta_validation(cls, beta):
    with pytest.raises(ValueError, match=rf"beta.*{beta}"):
        cls(beta=beta)


def test_cdpo_label_smoothing_validation():
    with pytest.raises(ValueError, match="label_smoothing"):
        CDPOLoss(0.1, label_smoothing=0.6)


def test_base_is_abstract():
    with pytest.raises(NotImplementedError):
        PreferenceLoss(0.1)(*pair([1.0]))


def test_ipo_summed_and_per_token_forms_hand_numbers():
    # chosen: 5 tokens, log-ratio -10 - (-12) = 2; rejected: 10 tokens, log-ratio -20 - (-18) = -2; beta 0.1: target 5
    pc, pr, rc, rr = torch.tensor([-10.0]), torch.tensor([-20.0]), torch.tensor([-12.0]), torch.tensor([-18.0])
    nc, nr = torch.tensor([5]), torch.tensor([10])
    summed, _ = IPOLoss(0.1)(pc, pr, rc, rr, chosen_tokens=nc, rejected_tokens=nr)
    assert summed.item() == pytest.approx(1.0)                       # h = 2 + 2 = 4: (4 - 5)^2
    avg, m = IPOLoss(0.1, average_logps=True)(pc, pr, rc, rr, chosen_tokens=nc, rejected_tokens=nr)
    assert avg.item() == pytest.approx(19.36, abs=1e-5)              # h = 2/5 + 2/10 = 0.6: (0.6 - 5)^2
    assert m["rewards/margins"].item() == pytest.approx(0.06)        # beta * 0.6
    assert m["logps/chosen"].item() == pytest.approx(-2.0)           # -10 / 5
    weighted, _ = IPOLoss(0.1, average_logps=True)(pc, pr, rc, rr, 0.7, chosen_tokens=nc, rejected_tokens=nr)
    assert weighted.item() == pytest.approx(0.7 * 19.36 + 0.3 * 31.36, abs=1e-4)  # l(-h) = (-0.6 - 5)^2
    with pytest.raises(ValueError, match="chosen_tokens"):
        IPOLoss(0.1, average_logps=True)(pc, pr, rc, rr)


def test_dpo_module_passes_response_lengths(tiny_dir):
    """DPOModule divides by the number of scored response tokens (the positions response_logps sums)."""
    from cream.models.loading import load_model
    from cream.models.scoring import pad_batch, response_logps
    from cream.training.dpo_module import DPOModule

    model = load_model(tiny_dir)
    b = pad_batch([[1, 5, 6, 7, 8, 2], [1, 5, 9, 2]], [2, 3], 3)  # chosen: 4 response tokens, rejected: 1
    b.update(ref_logp_chosen=torch.tensor([-3.0]), ref_logp_rejected=torch.tensor([-1.0]), weight=torch.tensor([1.0]))
    module = DPOModule(model, IPOLoss(0.1, average_logps=True), lr=0.0)
    module.log = lambda *a, **k: None
    loss = module.training_step(b, 0)
    with torch.no_grad():
        lp = response_logps(model, b["input_ids"], b["attention_mask"], b["response_mask"])
    h = (lp[0].item() + 3.0) / 4 - (lp[1].item() + 1.0) / 1
    assert loss.item() == pytest.approx((h - 5.0) ** 2, rel=1e-4)


def test_rpo_nll_pools_the_batch_tokens():
    from cream.method.losses import rpo_nll

    # two chosen responses: log pi = -6 over 3 tokens, -3 over 1 token -> TRL's token mean 9 / 4 = 2.25
    # (a mean of per-response means would give (2 + 3) / 2 = 2.5)
    assert rpo_nll(torch.tensor([-6.0, -3.0]), torch.tensor([3, 1])).item() == pytest.approx(2.25)


def test_dpo_module_rpo_alpha_matches_trl(tiny_dir):
    """loss = mean DPO loss + rpo_alpha * TRL's nll_loss: the cross-entropy of the chosen completion tokens,
    F.cross_entropy over the flattened chosen logits and labels (prompt and padding ignored)."""
    from cream.models.loading import load_model
    from cream.models.scoring import pad_batch
    from cream.training.dpo_module import DPOModule

    model = load_model(tiny_dir)
    # chosen 1, chosen 2, rejected 1, rejected 2
    seqs = [[1, 5, 6, 7, 8, 2], [1, 5, 9, 2], [1, 5, 9, 4, 2], [1, 5, 7, 2]]
    starts = [2, 3, 2, 2]
    b = pad_batch(seqs, starts, 3)
    b.update(ref_logp_chosen=torch.tensor([-3.0, -2.0]), ref_logp_rejected=torch.tensor([-1.0, -4.0]),
             weight=torch.tensor([1.0, 1.0]))
    plain = DPOModule(model, SigmoidLoss(0.1), lr=0.0)
    rpo = DPOModule(model, SigmoidLoss(0.1), lr=0.0, rpo_alpha=0.7)
    logged = {}
    plain.log = lambda *a, **k: None
    rpo.log = lambda name, value, **k: logged.__setitem__(name, float(torch.as_tensor(value).detach()))
    base, with_nll = plain.training_step(b, 0).item(), rpo.training_step(b, 0).item()
    # TRL: labels = the next tokens, 0 (ignored) outside the chosen completions
    with torch.no_grad():
        logits = model(input_ids=b["input_ids"][:2], attention_mask=b["attention_mask"][:2]).logits[:, :-1]
    labels = torch.full(logits.shape[:2], -100, dtype=torch.long)
    for i, (seq, st) in enumerate(zip(seqs[:2], starts[:2])):
        for p in range(st, len(seq)):
            labels[i, p - 1] = seq[p]
    nll = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100).item()
    assert logged["train/nll_loss"] == pytest.approx(nll, rel=1e-5)
    assert with_nll == pytest.approx(base + 0.7 * nll, rel=1e-5)
