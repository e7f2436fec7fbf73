"""Nash-MD (Munos et al. 2023) for LM policies: a sampling scheme plus a regularised generalised IPO loss.

Nash-MD is mostly a *sampling scheme*: the opponent is the geometric mixture
``pi_t^beta ~ pi_t^{1 - beta} pi_ref^beta`` (Munos et al. Eq. 8; ``rules.geometric_mixture``),
and the step is ``pi_{t+1} = argmax_pi eta P(pi > pi_t^beta) - KL(pi || pi_t^beta)``,
i.e. ``pi_{t+1} ~ pi_t^{1 - eta tau} pi_ref^{eta tau} exp(eta P(. > pi_t^beta))`` with
``beta = eta tau`` = ``rules.regularized_step``. For an LM the sequence-level mixture
has an intractable normaliser; Munos et al. (Sec. 7) sample from the token-level
mixture, while :class:`~prefgym.agents.llm.algorithms.NashMDAlgorithm` reweights the
group's samples of ``pi_t`` by the sequence-level :func:`geometric_mixture_logp`. There is
no Nash-MD-specific loss in the five papers; two loss forms
realise its step:

* :func:`nash_md_loss`, the generalised IPO loss of :mod:`.omwu` with the regularised
  base ``(1 - eta tau) sg log pi_t + eta tau log pi_ref``. Its minimiser is exactly
  ``rules.regularized_step`` (tested); one SGD step from the base is the online-IPO /
  "OMD (regularized)" step of 002 App. D.2 (Zhou et al. 2025, App. E.1), and the
  same loss with ``P(. > pi_t)`` and ``P(. > pi_{t+1/2})`` gives EGPO's two half-steps.
* Nash-MD-PG (Munos et al. Sec. 7): policy gradient with reward ``P(y > y') - 1/2``,
  ``y' ~ pi_t^beta``, plus ``tau KL(pi || pi_ref)``:
  ``mpo.mpo_loss(logp, advantages(P, baseline="half"), magnet_logp=ref_logp, alpha=tau, eta=math.inf)``.
"""

from __future__ import annotations

from torch import Tensor

from prefgym.agents.llm.losses.common import LossOutput
from prefgym.agents.llm.losses.omwu import generalized_ipo_loss

__all__ = ["geometric_mixture_logp", "nash_md_loss"]


def geometric_mixture_logp(logp: Tensor, ref_logp: Tensor, beta: float) -> Tensor:
    """Unnormalised log-mixture ``(1 - beta) log pi(y) + beta log pi_ref(y)`` (``rules.geometric_mixture``).

    Its normaliser is intractable for sequences; differences between responses of the
    same prompt (all a contrast loss needs) are exact. Detached.
    """
    return ((1.0 - beta) * logp + beta * ref_logp).detach()


def nash_md_loss(
    logp: Tensor,
    win_rate: Tensor,
    *,
    ref_logp: Tensor,
    eta: float,
    tau: float,
    base_logp: Tensor | None = None,
    logp_other: Tensor | None = None,
    win_rate_other: Tensor | None = None,
    ref_logp_other: Tensor | None = None,
    base_logp_other: Tensor | None = None,
    weights: Tensor | None = None,
) -> LossOutput:
    """Regularised generalised IPO loss whose minimiser is ``rules.regularized_step``.

    ``E ( [log pi_theta(y) - b(y)] - [log pi_theta(y') - b(y')] - eta [P(y > opp) - P(y' > opp)] )^2``
    with the detached base ``b = (1 - eta tau) log pi_t + eta tau log pi_ref``
    (:func:`geometric_mixture_logp` with ``beta = eta tau``).

    Parameters
    ----------
    logp
        (B,) paired or (B, K) grouped policy log-probs (layouts of :func:`.omwu.generalized_ipo_loss`).
    win_rate
        ``P(y > opponent)``: the opponent is ``pi_t^{eta tau}`` for Nash-MD, ``pi_t`` for
        002's "OMD (regularized)".
    ref_logp
        ``log pi_ref(y)``, detached.
    eta, tau
        Step size and KL coefficient (``eta tau <= 1``).
    base_logp
        ``log pi_t``; default ``logp.detach()``.
    """
    if not 0.0 <= eta * tau <= 1.0:
        raise ValueError("need 0 <= eta * tau <= 1")
    cur = logp.detach() if base_logp is None else base_logp
    base = geometric_mixture_logp(cur, ref_logp, eta * tau)  # Munos et al. Eq. (8) with beta = eta tau
    base_o = target_o = None
    if logp_other is not None:
        if win_rate_other is None or ref_logp_other is None:
            raise ValueError("paired layout needs win_rate_other and ref_logp_other")
        cur_o = logp_other.detach() if base_logp_other is None else base_logp_other
        base_o = geometric_mixture_logp(cur_o, ref_logp_other, eta * tau)
        target_o = eta * win_rate_other
    return generalized_ipo_loss(
        logp, eta * win_rate, base_logp=base, logp_other=logp_other, target_other=target_o,
        base_logp_other=base_o, weights=weights,
    )
