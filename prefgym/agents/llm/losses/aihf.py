"""AIHF's policy-only variants (004 Sec. 3.3): AIHF-DPO (Eq. 10) and Self-Play AIHF (Eq. 11).

Both drop the bilevel constraint (004 Eq. 5b) and substitute the DPO implicit reward
``R = beta log pi/pi^0`` (from the T = 1 closed form, 004 Eq. 42), so they are losses
on the policy alone, with demonstrations ``(s^E, a^E)`` and preference pairs
``(tau_j > tau_i)``. Each maximises ``w_1 L_1 + L_2``; the losses below are the negated
objectives, each term a mean over its own batch (the two data sets have their own sizes;
``w_1`` "reflects the relative size of demonstration versus preference data").

* AIHF-DPO (Eq. 10) = DPO + ``w_1`` x SFT log-likelihood (Liu et al. 2024); ``w_1 = 0``
  is DPO. 004 prints the reference terms of Eq. (10) with swapped indices
  (``pi^0(a_i|s_j)``, ``pi^0(a_j|s_i)``); we use the standard DPO form that Eq. (11)
  prints for the same term.
* Self-Play AIHF (Eq. 11) = ``w_1`` x SPIN (demonstration as chosen, a sample
  ``a~ ~ pi(.|s^E)`` of the current policy as rejected) + DPO on the preference pairs.
  004 says it "selects sigma as ell" but writes ``log sigma``; we follow the formula.
  The reference ``pi^0`` is whatever the loop passes (SPIN resets it to the previous
  round's model; 004 does not say).

The explicit-reward AIHF (004 Alg. 1) trains a reward model plus an RL inner loop; its
reward surrogate lives with the agent (``prefgym.agents.aihf``), not here.

Tabular correspondence: no single ``rules`` step. With ``w_1 = 0`` both are DPO, whose
minimiser under Bradley-Terry is ``pi ~ pi_ref exp(r / beta)``; the demonstration term
of Eq. (11) is SPIN's, whose population optimum is the demonstration distribution
(Chen et al. 2024).
"""

from __future__ import annotations

import torch
from torch import Tensor

from prefgym.agents.llm.losses.common import LossOutput, weighted_mean
from prefgym.agents.llm.losses.preference import dpo_loss

__all__ = ["aihf_dpo_loss", "self_play_aihf_loss"]


def _zero(like: Tensor) -> Tensor:
    return torch.zeros((), dtype=like.dtype, device=like.device)


def aihf_dpo_loss(
    demo_logp: Tensor,
    chosen_logp: Tensor | None = None,
    rejected_logp: Tensor | None = None,
    ref_chosen_logp: Tensor | None = None,
    ref_rejected_logp: Tensor | None = None,
    *,
    beta: float = 0.1,
    w1: float = 1e-4,
    demo_weights: Tensor | None = None,
    pref_weights: Tensor | None = None,
) -> LossOutput:
    """AIHF-DPO (004 Eq. 10): ``-w_1 E_D[log pi(a^E|s^E)] - E_P[log sigma(beta (r_j - r_i))]``.

    ``r = log pi/pi^0`` is the DPO implicit reward of each response of a pair.

    Parameters
    ----------
    demo_logp
        (B_D,) policy log-likelihood of demonstrations, ``log pi(a^E|s^E)``. For the
        discounted form of 004 Eq. (6), pass ``sum_t gamma^t log pi(a_t^E|s_t^E)`` instead.
    chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp
        (B_P,) the preference pairs as in :func:`..preference.dpo_loss`; ``None`` skips
        the preference term (pure SFT).
    beta
        DPO temperature.
    w1
        Demonstration weight (004 Table 6: 0.01, 0.001, 0.0001; headline 1e-4).

    Returns
    -------
    LossOutput
        Metrics: ``nll_demo``, ``dpo`` and DPO's margin/accuracy metrics.
    """
    nll = -weighted_mean(demo_logp, demo_weights)  # 004 Eq. (10) first term, L_1 = l_SFT (Eq. 6)
    metrics = {"nll_demo": nll.detach()}
    pref = _zero(demo_logp)
    if chosen_logp is not None:
        if rejected_logp is None or ref_chosen_logp is None or ref_rejected_logp is None:
            raise ValueError("the preference term needs rejected_logp and both reference log-probs")
        out = dpo_loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp,
                       beta=beta, weights=pref_weights)  # 004 Eq. (10) second term
        pref = out.loss
        metrics.update(out.metrics)
        metrics["dpo"] = pref.detach()
    return LossOutput(w1 * nll + pref, metrics)


def self_play_aihf_loss(
    demo_logp: Tensor,
    sample_logp: Tensor,
    ref_demo_logp: Tensor,
    ref_sample_logp: Tensor,
    chosen_logp: Tensor | None = None,
    rejected_logp: Tensor | None = None,
    ref_chosen_logp: Tensor | None = None,
    ref_rejected_logp: Tensor | None = None,
    *,
    beta: float = 0.1,
    w1: float = 1.0,
    demo_weights: Tensor | None = None,
    pref_weights: Tensor | None = None,
) -> LossOutput:
    """Self-Play AIHF (004 Eq. 11): ``w_1`` x SPIN term + DPO term.

    ``-w_1 E[log sigma(beta log pi(a^E|s^E)/pi^0(a^E|s^E) - beta log pi(a~|s^E)/pi^0(a~|s^E))]
    - E_P[log sigma(beta (r_j - r_i))]``.

    Parameters
    ----------
    demo_logp, ref_demo_logp
        (B_D,) log-probs of the demonstration ``a^E`` under the policy and ``pi^0`` (detached).
    sample_logp, ref_sample_logp
        (B_D,) log-probs of ``a~ ~ pi(.|s^E)``, a response the current policy sampled
        for the same prompt (treated as data: no gradient through the sampling).
    chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp
        (B_P,) preference pairs; ``None`` skips the term (``w_1`` x SPIN alone).
    beta, w1
        Temperature and demonstration weight (004 does not report them for Eq. 11).

    Returns
    -------
    LossOutput
        Metrics: ``spin`` (demonstration term), ``spin_accuracy``, ``dpo`` and DPO's metrics.
    """
    spin = dpo_loss(demo_logp, sample_logp, ref_demo_logp, ref_sample_logp,
                    beta=beta, weights=demo_weights)  # 004 Eq. (11) first term (SPIN)
    metrics = {"spin": spin.loss.detach(), "spin_accuracy": spin.metrics["accuracy"]}
    pref = _zero(demo_logp)
    if chosen_logp is not None:
        if rejected_logp is None or ref_chosen_logp is None or ref_rejected_logp is None:
            raise ValueError("the preference term needs rejected_logp and both reference log-probs")
        out = dpo_loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp,
                       beta=beta, weights=pref_weights)  # 004 Eq. (11) second term
        pref = out.loss
        metrics.update(out.metrics)
        metrics["dpo"] = pref.detach()
    return LossOutput(w1 * spin.loss + pref, metrics)
