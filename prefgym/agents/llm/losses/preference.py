"""Offline pairwise preference losses: DPO, IPO and SLiC-HF (the baselines of 003 Sec. 7 / App. E.2).

All take sequence log-probabilities ``log pi(y|x)`` (sum over response tokens) of the
chosen ``y_w`` and rejected ``y_l`` responses. Tabular correspondence: the minimiser
of DPO under Bradley-Terry with reward ``r`` is ``pi ~ pi_ref exp(r / beta)``, one
``regularized_step`` with ``eta tau = 1`` from the reference; online IPO on
self-generated pairs is a Nash-MD / regularised-OMD step (see
:mod:`prefgym.agents.llm.losses.nash_md`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from prefgym.agents.bradley_terry import bradley_terry_nll
from prefgym.agents.llm.losses.common import LossOutput, weighted_mean

__all__ = ["dpo_loss", "ipo_loss", "slic_hf_loss", "implicit_margin"]


def implicit_margin(
    chosen_logp: Tensor, rejected_logp: Tensor, ref_chosen_logp: Tensor, ref_rejected_logp: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(h, r_w, r_l)``: margin ``h = r_w - r_l`` of ``r = log pi/pi_ref`` (references detached)."""
    r_w = chosen_logp - ref_chosen_logp.detach()
    r_l = rejected_logp - ref_rejected_logp.detach()
    return r_w - r_l, r_w, r_l


def _pair_metrics(h: Tensor, r_w: Tensor, r_l: Tensor, beta: float) -> dict[str, Tensor]:
    return {
        "margin": (beta * h).detach().mean(),
        "accuracy": (h > 0).to(h.dtype).detach().mean(),
        "reward_chosen": (beta * r_w).detach().mean(),
        "reward_rejected": (beta * r_l).detach().mean(),
    }


def dpo_loss(
    chosen_logp: Tensor,
    rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    *,
    beta: float = 0.1,
    weights: Tensor | None = None,
) -> LossOutput:
    """DPO: ``-log sigma(beta [log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l)])`` (003 Eq. 5).

    Parameters
    ----------
    chosen_logp, rejected_logp
        (B,) policy sequence log-probs, with grad.
    ref_chosen_logp, ref_rejected_logp
        (B,) reference log-probs; detached.
    beta
        KL coefficient.
    weights
        Optional (B,) sample weights (weighted mean).

    Returns
    -------
    LossOutput
        Metrics: ``margin`` (mean ``beta h``), ``accuracy`` (``h > 0``), ``reward_chosen``,
        ``reward_rejected`` (mean implicit rewards ``beta log pi/pi_ref``).
    """
    h, r_w, r_l = implicit_margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
    per = bradley_terry_nll(beta * h)  # 003 Eq. (5)
    return LossOutput(weighted_mean(per, weights), _pair_metrics(h, r_w, r_l, beta))


def ipo_loss(
    chosen_logp: Tensor,
    rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    *,
    beta: float = 0.1,
    weights: Tensor | None = None,
) -> LossOutput:
    """IPO (Azar et al. 2023, Eq. 17): ``(h - 1/(2 beta))^2``.

    ``h = log(pi(y_w) pi_ref(y_l) / (pi(y_l) pi_ref(y_w)))``.

    ``beta`` is Azar et al.'s ``tau``. Sequence log-probs are used as given (some
    implementations divide by the response length first; do that before calling if wanted).
    Metrics as in :func:`dpo_loss`.
    """
    h, r_w, r_l = implicit_margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
    per = (h - 1.0 / (2.0 * beta)) ** 2  # Azar et al. (17), as quoted in 003 App. E.2
    return LossOutput(weighted_mean(per, weights), _pair_metrics(h, r_w, r_l, beta))


def slic_hf_loss(
    chosen_logp: Tensor,
    rejected_logp: Tensor,
    *,
    delta: float = 1.0,
    reg_logp: Tensor | None = None,
    lam: float = 0.0,
    weights: Tensor | None = None,
) -> LossOutput:
    """SLiC-HF, direct version (Zhao et al. 2023; 003 App. E.2).

    ``max(0, delta - log pi(y_w|x) + log pi(y_l|x)) - lam log pi(y_ref|x)``: a hinge
    on the sequence log-likelihood margin plus a likelihood regulariser on responses
    ``y_ref`` of the reference/SFT model (003 samples 128 of 1M pre-generated reference
    stories per step). No reference log-probs enter the hinge.

    Parameters
    ----------
    chosen_logp, rejected_logp
        (B,) policy sequence log-probs.
    delta
        Hinge margin.
    reg_logp
        (B',) policy log-probs of reference responses (any batch size), or ``None``.
    lam
        Regulariser weight.
    weights
        Optional (B,) weights of the hinge term.

    Returns
    -------
    LossOutput
        Metrics: ``hinge``, ``nll_reference`` (if ``reg_logp``), ``margin`` (mean
        ``log pi(y_w) - log pi(y_l)``), ``accuracy``.
    """
    margin = chosen_logp - rejected_logp
    hinge = weighted_mean(torch.clamp(delta - margin, min=0.0), weights)  # SLiC-HF rank calibration loss
    metrics = {
        "hinge": hinge.detach(),
        "margin": margin.detach().mean(),
        "accuracy": (margin > 0).to(margin.dtype).detach().mean(),
    }
    loss = hinge
    if reg_logp is not None:
        nll = -reg_logp.mean()  # SLiC-HF regulariser -lambda log pi(y_ref|x)
        metrics["nll_reference"] = nll.detach()
        loss = loss + lam * nll
    return LossOutput(loss, metrics)
