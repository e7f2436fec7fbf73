"""Squared log-ratio regression losses: SPPO, OMPO (001 Alg. 2) and MPO-practical (001 Alg. 4).

All three fit ``log pi_theta(y|x) - log pi_t(y|x)`` to a target ``eta * payoff - log Z``
on responses ``y ~ pi_t`` (``old_logp`` = ``log pi_t``, detached):

``L(theta) = E_{y ~ pi_t} (log pi_theta(y) - log pi_t(y) - (eta * g(y) - log Z))^2``.

The exact prox step ``pi_{t+1} ~ pi_t exp(eta g)`` has ``log pi_{t+1} - log pi_t =
eta g - log Z_t`` with ``log Z_t = log E_{pi_t} exp(eta g)``; the papers replace
``log Z_t`` by a constant (SPPO: ``eta / 2``; OMPO: ``beta (H - h + 1) / 2``), which is
exact when every preference is a tie (all ``P = 1/2`` give the target 0, so
``pi_{t+1} = pi_t``).

Tabular correspondence (tested): with exact expectations (all responses, weights
``pi_t``) and ``log_z`` set to the exact ``log Z_t``, the unique minimiser over softmax
logits is the tabular rule: SPPO and MPO-practical realise
``rules.mirror_step(theta_t, P(. > pi_t) - 1/2, eta)``; OMPO realises
``rules.mirror_step(theta_t, rules.optimistic_payoff(g_t, g_{t-1}), beta)``, i.e.
``rules.optimistic_step`` (at ``H = 1``). With the constant ``log Z`` the minimiser is the
weighted-L2 projection of the unnormalised target onto the simplex, off the exact step
by ``O(log Z_t - const)``; ``rules.regression_fit`` (the tabular nested solver)
normalises the target instead. All rules return normalised log-probabilities, and
so does ``log_softmax`` of the fitted logits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prefgym.agents.llm.losses.common import LossOutput, weighted_mean
from prefgym.algorithms.rules import optimistic_payoff

__all__ = [
    "log_ratio_regression_loss",
    "sppo_loss",
    "ompo_q_estimate",
    "ompo_loss",
    "mpo_regression_loss",
]


def log_ratio_regression_loss(
    logp: Tensor, old_logp: Tensor, target: Tensor, weights: Tensor | None = None
) -> LossOutput:
    """``mean (log pi_theta(y) - log pi_t(y) - target)^2`` with ``old_logp`` and ``target`` detached.

    The common core of :func:`sppo_loss`, :func:`ompo_loss` and :func:`mpo_regression_loss`.
    Metrics: ``log_ratio`` (mean ``log pi/pi_t``), ``target`` (mean target), ``residual``
    (mean absolute residual).
    """
    ratio = logp - old_logp.detach()
    resid = ratio - target.detach()
    loss = weighted_mean(resid**2, weights)
    metrics = {
        "log_ratio": ratio.detach().mean(),
        "target": target.detach().mean(),
        "residual": resid.detach().abs().mean(),
    }
    return LossOutput(loss, metrics)


def sppo_loss(
    logp: Tensor,
    old_logp: Tensor,
    win_rate: Tensor,
    *,
    eta: float,
    log_z: float | Tensor | None = None,
    weights: Tensor | None = None,
) -> LossOutput:
    """SPPO regression (Wu et al. 2024, Sec. 4, the regression form of their Eq. 4.6; 002 App. D.2).

    ``(log pi(y)/pi_t(y) - (eta P(y > pi_t) - log Z))^2``.

    Parameters
    ----------
    logp
        (B,) ``log pi_theta(y|x)`` for ``y ~ pi_t``, with grad.
    old_logp
        (B,) ``log pi_t(y|x)``; detached.
    win_rate
        (B,) estimate of ``P(y > pi_t | x)`` (e.g. mean win rate against other samples of ``pi_t``).
    eta
        Step size of the mirror-descent step.
    log_z
        ``log Z`` (float or (B,) tensor); default ``eta / 2``, which gives SPPO's target
        ``eta (P(y > pi_t) - 1/2)``.

    Realises ``rules.mirror_step`` (module docstring).
    """
    log_z = eta / 2.0 if log_z is None else log_z
    target = eta * win_rate - log_z  # 002 App. D.2 (SPPO): eta (P - 1/2), log Z ~ eta/2
    return log_ratio_regression_loss(logp, old_logp, target, weights)


def ompo_q_estimate(
    win_rate: Tensor, prev_win_rate: Tensor | None = None, *, turn_mask: Tensor | None = None
) -> Tensor:
    """Monte-Carlo optimistic Q of 001 Eq. (2) for one sampled continuation.

    ``Q_hat_h = sum_{tau >= h} (2 P([s_tau, a_tau] > current) - P([s_tau, a_tau] > previous))``,
    "current" / "previous" being continuations sampled from ``pi_t`` / ``pi_{t-1}``.

    Parameters
    ----------
    win_rate
        Preferences against samples of ``pi_t``. Without ``turn_mask``: any shape,
        one value per answer (001 Sec. 4.2 "one-step Q", the sum truncated at ``tau = h``).
        With ``turn_mask``: (..., L) per remaining turn ``tau = h..H``, summed over the last axis.
    prev_win_rate
        Same shape, against samples of ``pi_{t-1}``; ``None`` at the first iteration,
        where 001 uses ``Q_hat = sum P`` (MPO's estimator; the same expectation as the
        optimistic one with ``pi_0 = pi_1``).
    turn_mask
        (..., L) valid turns (episodes may end early).

    Returns
    -------
    Tensor
        ``Q_hat``: ``rules.optimistic_payoff`` of the preferences, summed over turns.
    """
    per = win_rate if prev_win_rate is None else optimistic_payoff(win_rate, prev_win_rate)  # 001 Eq. (2)
    if turn_mask is None:
        return per
    return (per * turn_mask.to(per.dtype)).sum(dim=-1)


def ompo_loss(
    logp: Tensor,
    old_logp: Tensor,
    q_hat: Tensor,
    *,
    beta: float,
    horizon: int = 1,
    step: int | Tensor = 1,
    log_z: float | Tensor | None = None,
    weights: Tensor | None = None,
) -> LossOutput:
    """OMPO practical regression (001 Alg. 2): ``(log pi(a|s) - log pi_t(a|s) - beta Q_hat + log Z)^2``.

    Parameters
    ----------
    logp, old_logp
        (B,) log-probs of the answer ``a`` at turn ``h`` (state ``s`` = conversation so
        far) under the trained policy and under ``pi_t`` (detached). One stationary
        policy serves every turn, as in 001.
    q_hat
        (B,) optimistic Q estimate, :func:`ompo_q_estimate`.
    beta
        Step size (001 uses ``beta``, not ``beta_h = beta / (H - h + 1)`` of Thm 10, in Alg. 2).
    horizon, step
        ``H`` and the turn ``h`` (1-based; int or (B,) tensor) of each sample.
    log_z
        Overrides the constant ``log Z_h = beta (H - h + 1) / 2`` (001 Sec. 3.2 heuristic;
        001 App. G.2 sets ``log z = 0.5``, a tunable bias).

    Realises ``rules.optimistic_step`` / ``mirror_step`` on ``rules.optimistic_payoff`` (module docstring).
    """
    if log_z is None:
        log_z = beta * (horizon - torch.as_tensor(step, dtype=logp.dtype, device=logp.device) + 1) / 2.0
    target = beta * q_hat - log_z  # 001 Alg. 2 loss: log pi - log pi_t - beta Q_hat + beta (H - h + 1)/2
    return log_ratio_regression_loss(logp, old_logp, target, weights)


def mpo_regression_loss(
    logp: Tensor,
    old_logp: Tensor,
    q_hat: Tensor,
    *,
    beta: float,
    horizon: int = 1,
    step: int | Tensor = 1,
    weights: Tensor | None = None,
) -> LossOutput:
    """MPO practical version of 001 (App. D, Alg. 4): ``(log pi/pi_t - beta (Q_hat - (H - h + 1)/2))^2``.

    This is 001's non-optimistic natural-actor-critic "MPO" (not 000's magnetic MPO,
    see :mod:`prefgym.agents.llm.losses.mpo`). ``q_hat`` is 001 Eq. (4): the sum of
    preferences against continuations of ``pi_t`` itself (``ompo_q_estimate(win_rate)``).
    At ``H = 1`` it coincides with :func:`sppo_loss`. Realises ``rules.mirror_step``.
    """
    half = (horizon - torch.as_tensor(step, dtype=logp.dtype, device=logp.device) + 1) / 2.0
    target = beta * (q_hat - half)  # 001 Alg. 4 loss (beta restored, see 001 notes 2.7)
    return log_ratio_regression_loss(logp, old_logp, target, weights)
