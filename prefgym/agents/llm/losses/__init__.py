"""The five papers' update rules as losses on a ``transformers`` policy.

Every function here is a small, pure torch function of log-probabilities; the shared
self-play loop samples responses, queries the judge, computes log-probs and calls them.

Conventions
-----------
Inputs
    * ``logp``: *sequence* log-probs ``log pi_theta(y|x)`` (sum over the response
      tokens), shape (B,), with grad. Grouped losses take (B, K) for K responses per
      prompt (leave-one-out baselines, all-pairs OMWU, best-of-n / ranked SPO).
    * ``ref_logp`` / ``old_logp`` / ``magnet_logp`` / ``base_logp``: the same responses
      under the reference, the iterate at the start of the iteration ``pi_t``, the
      magnet, or a stop-gradient base. The functions ``.detach()`` everything the
      papers treat as stop-gradient (these, targets, rewards, advantages, baselines and
      SPO's ``mu``), so passing tensors that require grad is safe.
    * Per-sample targets / win rates / rewards / weights: (B,) or (B, K), detached.
      ``weights`` (optional everywhere) turn the batch mean into a weighted mean
      ``sum w l / sum w``; with all responses enumerated and ``weights = pi_t`` the
      loss is an exact expectation (how the tabular tests use them).
    * Token level: where a paper's estimator is token-wise (MPO's sequential KL,
      000 Sec. 3.3; SPO's global KL, 003 App. D) per-token log-probs (B, T) with a
      ``mask`` (B, T) or full logits (B, T, V) are taken; :mod:`.kl` has the
      sequence-level, sampled-token and full-vocabulary estimators.
Outputs
    A :class:`LossOutput` ``(loss, metrics)``: ``loss`` a 0-d tensor, the (weighted)
    mean over the batch; ``metrics`` detached 0-d tensors (implicit reward margins,
    accuracies, KLs, ...). ``loss, metrics = fn(...)`` unpacks it. Estimators that are
    building blocks (:mod:`.kl`, advantages, targets) return plain tensors.
Equations
    A comment ``# 003 Eq. (9)`` next to a line names the paper (seed number) and the
    equation it implements; 000 MPO, 001 OMPO, 002 OMWU, 003 SPO, 004 AIHF.

Families and the tabular rule each realises (``prefgym.algorithms.rules``)
---------------------------------------------------------------------
=====================  ==================================  ==========================================
module                 losses                              tabular rule
=====================  ==================================  ==========================================
:mod:`.preference`     ``dpo_loss``, ``ipo_loss``,          offline baselines (DPO: ``pi_ref exp(r/beta)``)
                       ``slic_hf_loss``
:mod:`.spo`            ``spo_loss`` (Eqs. 9-13),            ``spo_gradient``; minimiser ``Softmax(r/alpha)``
                       ``spo_best_of_n_loss`` (14),
                       ``spo_ranked_loss`` (15)
:mod:`.regression`     ``sppo_loss``, ``ompo_loss``,        ``mirror_step``; OMPO: ``mirror_step`` on
                       ``mpo_regression_loss``              ``optimistic_payoff`` (= ``optimistic_step``)
:mod:`.omwu`           ``generalized_ipo_loss``: the loss   the step of any spec (OMWU, Nash-MD, EGPO,
                       of every spec-driven algorithm       ...; :mod:`..spec_algorithm`), exact minimiser
:mod:`.mpo`            ``mpo_loss``, ``mpo_rt_loss``,       ``magnetic_step``; MPO-RT: ``regularized_step``
                       baselines and advantages
:mod:`.aihf`           ``aihf_dpo_loss``,                   DPO (+ SFT / SPIN demonstration terms)
                       ``self_play_aihf_loss``
=====================  ==================================  ==========================================
"""

from prefgym.agents.llm.losses.aihf import aihf_dpo_loss, self_play_aihf_loss
from prefgym.agents.llm.losses.common import (
    LossOutput,
    masked_sum,
    pairwise_differences,
    weighted_mean,
)
from prefgym.agents.llm.losses.mpo import (
    compute_baseline,
    mpo_loss,
    mpo_rt_loss,
    mpo_rt_reward,
    preference_advantages,
)
from prefgym.agents.llm.losses.omwu import generalized_ipo_loss
from prefgym.agents.llm.losses.preference import dpo_loss, implicit_margin, ipo_loss, slic_hf_loss
from prefgym.agents.llm.losses.regression import (
    log_ratio_regression_loss,
    mpo_regression_loss,
    ompo_loss,
    ompo_q_estimate,
    sppo_loss,
)
from prefgym.agents.llm.losses.spo import (
    spo_best_of_n_loss,
    spo_loss,
    spo_ranked_loss,
    spo_weights,
)
from prefgym.llm.kl import sequence_kl, token_kl, token_kl_full

__all__ = [
    "LossOutput",
    "aihf_dpo_loss",
    "compute_baseline",
    "dpo_loss",
    "generalized_ipo_loss",
    "implicit_margin",
    "ipo_loss",
    "log_ratio_regression_loss",
    "masked_sum",
    "mpo_loss",
    "mpo_regression_loss",
    "mpo_rt_loss",
    "mpo_rt_reward",
    "ompo_loss",
    "ompo_q_estimate",
    "pairwise_differences",
    "preference_advantages",
    "self_play_aihf_loss",
    "sequence_kl",
    "slic_hf_loss",
    "spo_best_of_n_loss",
    "spo_loss",
    "spo_ranked_loss",
    "spo_weights",
    "sppo_loss",
    "token_kl",
    "token_kl_full",
    "weighted_mean",
]
