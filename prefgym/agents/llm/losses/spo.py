"""Soft Preference Optimization (003): preference losses with softness ``alpha`` and a global KL.

``L_SPO = L_pref^alpha(pi_theta, D) + beta KL(pi_theta || pi_ref)`` (003 Eq. 6); the
preference part never sees ``pi_ref`` and the KL is estimated on the policy's own
samples (003 App. D), so the two parts are separate functions here:
:func:`spo_loss` (pairwise, Eqs. 9-13), :func:`spo_best_of_n_loss` (Eq. 14),
:func:`spo_ranked_loss` (Eq. 15); the KL is :func:`prefgym.llm.kl.token_kl_full` (App. D),
which the trainer evaluates chunk by chunk through
:meth:`prefgym.llm.policy.LMPolicy.sequential_kl` (``SPOAlgorithm(kl_estimator="token")``).

Tabular correspondence: the SPO gradient in the logits is
``prefgym.algorithms.rules.spo_gradient`` (the tabular SPO agent's rule), and under a
Bradley-Terry-consistent pair distribution the unique minimiser / absorbing fixed point
is ``Softmax(r / alpha)`` (003 Thms 1-4).

Numerics of the weights ``mu = (pi_w + pi_l)^gamma`` (Eq. 11)
------------------------------------------------------------
``mu`` is built from *sequence* probabilities, which underflow for real responses
(``log pi(y|x)`` is easily -100). It is computed in log space,
``log mu = gamma * logaddexp(log pi_w, log pi_l)``, detached (the paper forbids
gradients through ``mu``, Eq. 13), and by default rescaled per batch by
``exp(-max log mu)`` (``mu_scale="max"``), so the largest weight is 1 and nothing
underflows to an all-zero batch. A positive constant common to the batch keeps ``mu``
symmetric and positive, so Theorem 2's fixed point is unchanged; it only rescales the
step. ``mu_scale="mean"`` normalises to mean 1 instead, ``"none"`` gives the paper's raw
``mu`` (use it for short toy sequences only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from prefgym.agents.bradley_terry import bradley_terry_nll
from prefgym.agents.llm.losses.common import LossOutput, weighted_mean

__all__ = ["spo_weights", "spo_loss", "spo_best_of_n_loss", "spo_ranked_loss"]

MuScale = Literal["max", "mean", "none"]


def spo_weights(log_mass: Tensor, gamma: float, mu_scale: MuScale = "max") -> Tensor:
    """Stop-gradient weights ``mu = exp(gamma * log_mass)``, rescaled per batch (module docstring).

    ``log_mass`` is the log of the (symmetric) probability mass the weight depends on,
    e.g. ``logaddexp(log pi_w, log pi_l)`` for pairs (003 Sec. 4 example).
    """
    log_mu = gamma * log_mass.detach()  # 003 Eq. (11): mu ~ (pi_w + pi_l)^gamma, no gradient (Eq. 13)
    if gamma == 0.0:
        return torch.ones_like(log_mu)
    if mu_scale == "max":
        return torch.exp(log_mu - log_mu.max())
    if mu_scale == "mean":
        return torch.softmax(log_mu.reshape(-1), dim=0).reshape(log_mu.shape) * log_mu.numel()
    if mu_scale == "none":
        return torch.exp(log_mu)
    raise ValueError(f"mu_scale must be 'max', 'mean' or 'none', not {mu_scale!r}")


def spo_loss(
    chosen_logp: Tensor,
    rejected_logp: Tensor,
    *,
    alpha: float,
    gamma: float = 0.0,
    mu_scale: MuScale = "max",
    weights: Tensor | None = None,
) -> LossOutput:
    """Pairwise SPO preference loss ``L_pref^{alpha, mu}`` (003 Eqs. 9-12).

    Per pair, for ``alpha > 0``:
    ``-(mu / alpha) log(pi_w^alpha / (pi_w^alpha + pi_l^alpha))``
    ``= -(mu / alpha) log sigma(alpha (log pi_w - log pi_l))``;
    for ``alpha = 0``: ``-(mu / 2) (log pi_w - log pi_l)``. Its gradient is Eq. (13),
    ``-mu sigma(alpha (log pi_l - log pi_w)) (grad log pi_w - grad log pi_l)`` (weight 1/2 at ``alpha = 0``).

    Parameters
    ----------
    chosen_logp, rejected_logp
        (B,) policy sequence log-probs of ``y_w`` and ``y_l``, with grad.
    alpha
        Softness (>= 0); the tabular minimiser is ``Softmax(r / alpha)`` (Thm 1).
    gamma
        Exponent of the stop-gradient weight ``mu = (pi_w + pi_l)^gamma`` (Eq. 11); 0 gives ``mu = 1``.
    mu_scale
        Per-batch rescaling of ``mu`` (module docstring).
    weights
        Optional (B,) sample weights (e.g. the pair distribution ``D(y_w, y_l)`` in a tabular test).

    Returns
    -------
    LossOutput
        Metrics: ``accuracy`` (model prefers ``y_w``), ``error_weight`` (mean of
        ``pi_l^alpha / (pi_w^alpha + pi_l^alpha)``, the paper's "error" of the model),
        ``mu_mean``.
    """
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    diff = chosen_logp - rejected_logp
    mu = spo_weights(torch.logaddexp(chosen_logp, rejected_logp), gamma, mu_scale)
    if alpha > 0:
        per = bradley_terry_nll(alpha * diff) / alpha  # 003 Eq. (9)/(11) in the stable sigmoid form
        err = torch.sigmoid(-alpha * diff.detach())  # pi_l^a / (pi_w^a + pi_l^a), Eq. (13)
    else:
        per = -0.5 * diff  # 003 Eq. (10)/(12)
        err = torch.full_like(diff.detach(), 0.5)
    loss = weighted_mean(mu * per, weights)
    metrics = {
        "accuracy": (diff > 0).to(diff.dtype).detach().mean(),
        "error_weight": err.mean(),
        "mu_mean": mu.mean(),
    }
    return LossOutput(loss, metrics)


def spo_best_of_n_loss(
    logp: Tensor,
    best: Tensor,
    *,
    alpha: float,
    gamma: float = 0.0,
    mu_scale: MuScale = "max",
    weights: Tensor | None = None,
) -> LossOutput:
    """Best-of-n SPO loss (003 Eq. 14): ``-(mu / alpha) log(pi(y_{i*})^alpha / sum_i pi(y_i)^alpha)``.

    Parameters
    ----------
    logp
        (B, n) policy sequence log-probs of the ``n`` responses of each prompt.
    best
        (B,) long, index ``i*`` of the labelled best response.
    alpha
        Softness, ``> 0`` (Eq. 14 is defined for ``alpha > 0``).
    gamma
        Weight exponent; ``mu = (sum_i pi(y_i))^gamma``, a permutation-symmetric choice
        (003 only requires ``mu`` symmetric positive and gives the pair example), detached.
    """
    if alpha <= 0:
        raise ValueError("the best-of-n SPO loss needs alpha > 0 (003 Eq. 14)")
    logsm = torch.log_softmax(alpha * logp, dim=-1)  # log(pi_i^alpha / sum_j pi_j^alpha)
    chosen = logsm.gather(-1, best.long().unsqueeze(-1)).squeeze(-1)
    mu = spo_weights(torch.logsumexp(logp, dim=-1), gamma, mu_scale)
    loss = weighted_mean(-mu * chosen / alpha, weights)  # 003 Eq. (14)
    metrics = {
        "accuracy": (logp.detach().argmax(dim=-1) == best).to(logp.dtype).mean(),
        "best_prob": chosen.detach().exp().mean(),
    }
    return LossOutput(loss, metrics)


def spo_ranked_loss(
    logp: Tensor,
    ranking: Tensor | None = None,
    *,
    alpha: float,
    rank_weights: Tensor | Sequence[float] | None = None,
    gamma: float = 0.0,
    mu_scale: MuScale = "max",
    weights: Tensor | None = None,
) -> LossOutput:
    """Ranked SPO loss (003 Eq. 15, Plackett-Luce data).

    ``-(1/alpha) sum_{k=1}^{n-1} mu_k log(pi(y_{tau(k)})^alpha / sum_{j >= k} pi(y_{tau(j)})^alpha)``.

    Parameters
    ----------
    logp
        (B, n) policy sequence log-probs.
    ranking
        (B, n) long permutation, ``ranking[:, k]`` = index of the ``(k+1)``-th best
        response (``tau(k+1)``); ``None`` means ``logp`` is already sorted best first.
    alpha
        Softness, ``> 0``.
    rank_weights
        Constant weights ``mu_1..mu_{n-1}`` ((n-1,) or (B, n-1)); default all ones.
        ``[1, 0, ..., 0]`` reduces the loss to the best-of-n loss (003 Sec. 5).
    gamma
        If non-zero, multiplies ``mu_k`` by the detached ``(sum_{j >= k} pi(y_{tau(j)}))^gamma``,
        symmetric in the responses still ranked.
    """
    if alpha <= 0:
        raise ValueError("the ranked SPO loss needs alpha > 0 (003 Eq. 15)")
    n = logp.shape[-1]
    s = logp if ranking is None else logp.gather(-1, ranking.long())
    # logsumexp over the tail j >= k, for every k: reversed cumulative logsumexp
    tail = torch.flip(torch.logcumsumexp(torch.flip(alpha * s, dims=[-1]), dim=-1), dims=[-1])
    terms = (alpha * s - tail)[..., : n - 1]  # log(pi_k^alpha / sum_{j>=k} pi_j^alpha)
    mu = torch.ones_like(terms.detach())
    if rank_weights is not None:
        mu = mu * torch.as_tensor(rank_weights, dtype=s.dtype, device=s.device)
    if gamma:
        mass = torch.flip(torch.logcumsumexp(torch.flip(s, dims=[-1]), dim=-1), dims=[-1])[..., : n - 1]
        mu = mu * spo_weights(mass, gamma, mu_scale)
    per = -(mu * terms).sum(dim=-1) / alpha  # 003 Eq. (15)
    return LossOutput(weighted_mean(per, weights), {"top_prob": terms[..., 0].detach().exp().mean()})
