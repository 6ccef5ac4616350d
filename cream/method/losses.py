"""Preference losses, each a function l(h) of the log-ratio difference of a pair, and CREAM's weighting.

For a pair (a, b):  h(a, b) = (log pi_theta(a) - log pi_ref(a)) - (log pi_theta(b) - log pi_ref(b)),
sums over response tokens.  Every loss here is consistency-regularized (Wang et al. 2024, CREAM):

    L = C * l(h(y+, y-)) + (1 - C) * l(h(y-, y+)) = C * l(h) + (1 - C) * l(-h)

with C in [0, 1] per pair; C = 1 is the plain loss.  Computed in float32 whatever the input dtype.

``average_logps=True`` uses per-token averages instead of sums: each response's log pi_theta and log pi_ref
are divided by its number of response tokens before h is formed (TRL does this for its IPO loss; the
rewards/logps metrics are then per-token too).  Default: sums, log pi(y|x) as the DPO paper writes it
(for IPO, see ``IPOLoss`` on the two forms).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PreferenceLoss(nn.Module):
    """Base class: subclasses define ``pair_loss(h)`` elementwise; ``forward`` applies the weighting."""

    def __init__(self, beta: float = 0.1, average_logps: bool = False):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"loss.beta={beta}: must be > 0")
        self.beta, self.average_logps = float(beta), bool(average_logps)

    def pair_loss(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, ref_chosen_logps: Tensor,
                ref_rejected_logps: Tensor, weight: Tensor | float = 1.0, chosen_tokens: Tensor | None = None,
                rejected_tokens: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-pair losses [B] and per-pair metrics (TRL's names, not yet averaged).  ``chosen_tokens`` /
        ``rejected_tokens``: response lengths in tokens, needed with ``average_logps``."""
        pc, pr = policy_chosen_logps.float(), policy_rejected_logps.float()
        rc, rr = ref_chosen_logps.float(), ref_rejected_logps.float()
        if self.average_logps:
            if chosen_tokens is None or rejected_tokens is None:
                raise ValueError("average_logps=True needs the response lengths (chosen_tokens, rejected_tokens)")
            nc, nr = chosen_tokens.float().clamp(min=1), rejected_tokens.float().clamp(min=1)
            pc, pr, rc, rr = pc / nc, pr / nr, rc / nc, rr / nr
        chosen = pc - rc
        rejected = pr - rr
        h = chosen - rejected
        c = torch.as_tensor(weight, dtype=torch.float32, device=h.device)
        if not ((c >= 0) & (c <= 1)).all():  # also rejects NaN
            raise ValueError(f"consistency weight C must lie in [0, 1], got {c.flatten().tolist()[:8]}")
        losses = c * self.pair_loss(h) + (1 - c) * self.pair_loss(-h)
        rc, rr = (self.beta * chosen).detach(), (self.beta * rejected).detach()
        metrics = {"rewards/chosen": rc, "rewards/rejected": rr, "rewards/margins": rc - rr,
                   "rewards/accuracies": (rc > rr).float(), "logps/chosen": pc.detach(), "logps/rejected": pr.detach()}
        return losses, metrics


class SigmoidLoss(PreferenceLoss):
    """DPO (Rafailov et al. 2023):  l(h) = -log sigmoid(beta * h).

    With the CREAM weight, d L / d m = sigmoid(m) - C for the margin m = beta * h: the optimum sits
    where sigmoid(m) = C, and C = 0.5 is symmetric with minimum log 2 at m = 0.
    """

    def pair_loss(self, h: Tensor) -> Tensor:
        return -F.logsigmoid(self.beta * h)


class IPOLoss(PreferenceLoss):
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences"):  l(h) = (h - 1 / (2 beta))^2, which pulls h to a finite target instead of infinity.

    Two forms, both here:
    * summed log-ratios (the default): h from log pi(y|x) summed over the response's tokens, the paper's
      notation read literally (its eq. 17 writes log pi(y|x), with no length normalization);
    * per-token averages (``average_logps=True``): TRL's ``loss_type="ipo"``, which divides each response's
      log-probs by its token count first; TRL's source says the IPO authors confirmed this form to them,
      although the paper does not state it.
    The target 1 / (2 beta) is the same number in both, so the two forms pull very different log-ratio gaps."""

    def pair_loss(self, h: Tensor) -> Tensor:
        return (h - 1.0 / (2.0 * self.beta)) ** 2


class CDPOLoss(PreferenceLoss):
    """Conservative DPO / label smoothing (Mitchell 2023, "A note on DPO with noisy preferences"):
    l(h) = -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h), eps = the label-flip rate."""

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.1):
        super().__init__(beta)
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f"loss.label_smoothing={label_smoothing}: must be in [0, 0.5)")
        self.eps = float(label_smoothing)

    def pair_loss(self, h: Tensor) -> Tensor:
        return -(1 - self.eps) * F.logsigmoid(self.beta * h) - self.eps * F.logsigmoid(-self.beta * h)


class HingeLoss(PreferenceLoss):
    """Hinge (SLiC-HF, Zhao et al. 2023):  l(h) = max(0, 1 - beta * h)."""

    def pair_loss(self, h: Tensor) -> Tensor:
        return torch.relu(1 - self.beta * h)


def rpo_nll(policy_chosen_logps: Tensor, chosen_tokens: Tensor) -> Tensor:
    """The NLL term of iterative RPO (Pang et al. 2024, "Iterative Reasoning Preference Optimization":
    L = L_DPO + alpha * L_NLL(y+)), in TRL's form (``DPOConfig.rpo_alpha``): the cross-entropy of the chosen
    responses averaged over all their tokens in the batch,

        nll = -(sum_i log pi_theta(y+_i | x_i)) / (sum_i |y+_i|),

    a scalar added to the batch's mean preference loss as ``rpo_alpha * nll`` (TRL's ``nll_loss``; the
    paper divides each log-likelihood by its own response length, TRL and this function pool the batch's
    tokens: the two agree when the chosen responses have one length)."""
    return -policy_chosen_logps.float().sum() / chosen_tokens.float().sum().clamp(min=1)
