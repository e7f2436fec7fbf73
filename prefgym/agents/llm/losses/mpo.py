"""Magnetic Preference Optimization (000): MPO and MPO-RT policy-gradient losses.

MPO (000 Eq. 8, App. A Alg. 1) maximises, for ``y_1 ~ pi_theta``, ``y_2 ~`` the
opponent (= magnet ``pi_theta'``, a frozen earlier iterate),

``Psi(theta) = E[A] - alpha KL(pi_theta || magnet) - (1/eta) KL(pi_theta || pi_{theta^k})``

with REINFORCE advantages ``A = sum_{l >= t} gamma^{l-t} R_l - b``, reward
``R = P(y_1 > y_2 | x)`` and baseline ``b`` = ReMax (the greedy response's reward, the
choice of 000's experiments), leave-one-out, or 1/2 (000 App. A). The loss is
``-A log pi_theta(y_1) + alpha KL_magnet + (1/eta) KL_old``, taken for ``m`` SGD steps
per iteration (``m = 4``); the annealing ``eta^k = 1 - k / T_k`` and the magnet refresh
are the loop's. Both KLs are the sequential (token-wise) KL of 000 Sec. 3.3: pass
``kl_magnet`` / ``kl_old`` from :func:`..kl.token_kl_full` on the logits for the paper's
estimator (on an LM, :meth:`prefgym.llm.policy.LMPolicy.sequential_kl`, which the
trainer's ``MPOAlgorithm(kl_estimator="token")`` uses), or let the loss use the
sampled-token estimators of :mod:`..kl`.

MPO-RT (000 App. A.2, Alg. 2) moves the magnet KL into the reward,
``R = P(y_1 > y_2 | x) - alpha (log pi(y_1|x) - log pi_ref(y_1|x))``, and drops the alpha
term from the loss (Eq. 9).

Tabular correspondence (tested with exact expectations, one response per action):
the maximiser of MPO's objective over softmax logits is
``rules.magnetic_step(theta_k, A, eta, alpha, magnet)`` (000 Eq. 4 closed form; the
baseline is a constant and drops out); MPO-RT's is
``rules.regularized_step(theta_k, P, eta, alpha, ref)``, the KL-regularised MD step,
which equals ``magnetic_step`` with step ``eta' = eta / (1 - eta alpha)`` (000 Thm 3.5).

Off-policy reuse: 000 takes its ``m`` steps on the same samples without importance
weights (``sample_logp=None``, the default: the gradient is exact at the first step).
Passing ``sample_logp`` (the log-probs of the sampling policy, ``pi_{theta^k}``)
weights the policy-gradient and sampled-KL terms by ``rho = pi_theta / pi_{theta^k}``
so that every step's gradient is unbiased (not in the paper).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from prefgym.agents.llm.losses.common import LossOutput, masked_sum, weighted_mean
from prefgym.llm.kl import sequence_kl, token_kl

__all__ = [
    "compute_baseline",
    "preference_advantages",
    "mpo_loss",
    "mpo_rt_reward",
    "mpo_rt_loss",
]

BaselineKind = Literal["remax", "loo", "half", "none"]


def compute_baseline(
    rewards: Tensor,
    baseline: BaselineKind | float | Tensor = "remax",
    *,
    greedy_rewards: Tensor | None = None,
) -> Tensor:
    """The REINFORCE baseline ``b`` of 000 App. A, broadcastable to ``rewards``.

    Parameters
    ----------
    rewards
        (B,) rewards, or (B, K) for K samples per prompt.
    baseline
        ``"remax"``: ``b = greedy_rewards``, the reward of the greedy response of the same
        prompt against the same opponent (ReMax, Li et al. 2023; (B,), broadcast over K);
        ``"loo"``: leave-one-out mean of the other ``K - 1`` samples (Kool et al. 2019;
        needs (B, K), K >= 2); ``"half"``: 1/2 (Munos et al.); ``"none"``: 0; or a float /
        tensor used as is.
    """
    if isinstance(baseline, Tensor):
        return baseline.detach()
    if isinstance(baseline, int | float):
        return torch.full_like(rewards, float(baseline))
    if baseline == "remax":
        if greedy_rewards is None:
            raise ValueError("the ReMax baseline needs greedy_rewards")
        b = greedy_rewards.detach()
        return b[..., None] if rewards.dim() == b.dim() + 1 else b
    if baseline == "loo":
        if rewards.dim() < 2 or rewards.shape[-1] < 2:
            raise ValueError("the leave-one-out baseline needs grouped rewards (B, K) with K >= 2")
        k = rewards.shape[-1]
        return ((rewards.sum(dim=-1, keepdim=True) - rewards) / (k - 1)).detach()
    if baseline == "half":
        return torch.full_like(rewards, 0.5)
    if baseline == "none":
        return torch.zeros_like(rewards)
    raise ValueError(f"unknown baseline {baseline!r}")


def preference_advantages(
    rewards: Tensor,
    baseline: BaselineKind | float | Tensor = "remax",
    *,
    greedy_rewards: Tensor | None = None,
) -> Tensor:
    """Sequence-level advantages ``A = R - b``, detached.

    000 Alg. 1 line 7 with the reward on the last token and ``gamma = 1``; see
    :func:`compute_baseline` for ``baseline``.
    """
    return (rewards - compute_baseline(rewards, baseline, greedy_rewards=greedy_rewards)).detach()


def _per_sample(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else masked_sum(x, mask)


def _kl(logp: Tensor, q_logp: Tensor, mask: Tensor | None, sample_logp: Tensor | None) -> Tensor:
    if mask is None:
        return sequence_kl(logp, q_logp, sample_logp)
    return token_kl(logp, q_logp, mask, sample_logp)


def mpo_loss(
    logp: Tensor,
    advantages: Tensor,
    *,
    alpha: float,
    eta: float,
    magnet_logp: Tensor | None = None,
    old_logp: Tensor | None = None,
    mask: Tensor | None = None,
    sample_logp: Tensor | None = None,
    kl_magnet: Tensor | None = None,
    kl_old: Tensor | None = None,
    weights: Tensor | None = None,
) -> LossOutput:
    """MPO loss (000 Eq. 8, Alg. 1).

    ``-A log pi_theta(y) + alpha KL(pi_theta || magnet) + (1/eta) KL(pi_theta || pi_k)``.

    Parameters
    ----------
    logp
        Sequence log-probs (B,) (or any shape, e.g. (B, K)), or per-token log-probs
        (B, T) when ``mask`` is given, of responses sampled from ``pi_{theta^k}``; with grad.
    advantages
        Same shape as ``logp`` (per token) or (B,)
        broadcast over the tokens (:func:`preference_advantages`); detached.
    alpha
        Magnet KL coefficient (000's temperature; 0.2-0.3 in its experiments).
    eta
        MMD step; ``1/eta`` weights the trust-region KL. ``math.inf`` drops it.
    magnet_logp, old_logp
        Log-probs of the same tokens under the magnet / opponent ``pi_theta'`` and the
        iterate ``pi_{theta^k}`` at the start of the iteration (detached). Needed for
        the sampled KL estimators unless ``kl_magnet`` / ``kl_old`` are given.
    mask
        (B, T) response tokens; switches to the token-level (sequential) estimators.
    sample_logp
        Log-probs of the sampling policy for importance weights (module docstring);
        ``None``: no correction, as in 000.
    kl_magnet, kl_old
        Precomputed per-sample KLs, shaped like the sequence log-probs (e.g. (B,) or (B, K);
        ``token_kl_full`` on logits or ``LMPolicy.sequential_kl``, 000 Sec. 3.3), with grad.
    weights
        Optional (B,) sample weights.

    Returns
    -------
    LossOutput
        Metrics: ``pg_loss``, ``kl_magnet``, ``kl_old``, ``advantage``.
    """
    adv = advantages.detach()
    if mask is not None and adv.dim() == logp.dim() - 1:
        adv = adv[..., None]
    if sample_logp is None:
        pg_tok = -adv * logp  # REINFORCE surrogate of E[A], 000 Eq. (8)
    else:
        pg_tok = -adv * torch.exp(logp - sample_logp.detach())  # importance-weighted surrogate
    pg = _per_sample(pg_tok, mask)
    total = pg
    adv_mean = adv.mean() if mask is None else masked_sum(adv.expand_as(logp), mask).sum() / mask.sum()
    metrics: dict[str, Tensor] = {
        "pg_loss": weighted_mean(pg, weights).detach(),
        "advantage": adv_mean.detach(),
    }
    if kl_magnet is None and alpha != 0.0:
        if magnet_logp is None:
            raise ValueError("alpha > 0 needs magnet_logp or kl_magnet")
        kl_magnet = _kl(logp, magnet_logp, mask, sample_logp)
    if kl_magnet is not None:
        total = total + alpha * kl_magnet  # 000 Eq. (8): - alpha KL(pi_theta || pi_theta')
        metrics["kl_magnet"] = weighted_mean(kl_magnet, weights).detach()
    inv_eta = 0.0 if math.isinf(eta) else 1.0 / eta
    if kl_old is None and inv_eta != 0.0:
        if old_logp is None:
            raise ValueError("a finite eta needs old_logp or kl_old")
        kl_old = _kl(logp, old_logp, mask, sample_logp)
    if kl_old is not None:
        total = total + inv_eta * kl_old  # 000 Eq. (8): - (1/eta) KL(pi_theta || pi_theta^k)
        metrics["kl_old"] = weighted_mean(kl_old, weights).detach()
    return LossOutput(weighted_mean(total, weights), metrics)


def mpo_rt_reward(preference: Tensor, logp: Tensor, ref_logp: Tensor, alpha: float) -> Tensor:
    """MPO-RT's reward ``P(y_1 > y_2|x) - alpha (log pi(y_1|x) - log pi_ref(y_1|x))`` (000 Alg. 2 line 6).

    ``logp`` is the sampling policy's sequence log-prob (computed once per iteration);
    everything is detached: the reward is a constant for the policy gradient. Apply it
    to the greedy response too for the ReMax baseline.
    """
    return (preference - alpha * (logp - ref_logp)).detach()  # 000 Alg. 2 line 6


def mpo_rt_loss(
    logp: Tensor,
    preference: Tensor,
    *,
    ref_logp: Tensor,
    old_logp: Tensor,
    alpha: float,
    eta: float,
    baseline: BaselineKind | float | Tensor = "remax",
    greedy_rewards: Tensor | None = None,
    mask: Tensor | None = None,
    sample_logp: Tensor | None = None,
    kl_old: Tensor | None = None,
    weights: Tensor | None = None,
) -> LossOutput:
    """MPO-RT loss (000 Eq. 9, Alg. 2): ``-A log pi_theta(y) + (1/eta) KL(pi_theta || pi_k)``.

    The magnet KL sits in the reward (:func:`mpo_rt_reward`); there is no alpha-KL term.

    Parameters
    ----------
    logp
        (B,) sequence (or (B, T) token, with ``mask``) policy log-probs, with grad.
    preference
        (B,) (or (B, K)) ``P(y_1 > y_2 | x)``.
    ref_logp
        Log-probs under the magnet/reference ``pi_theta'`` (same shape as ``logp``).
    old_logp
        Log-probs under ``pi_{theta^k}``: used in the reward (the ``log pi`` of Alg. 2
        line 6, computed when sampling) and in the trust-region KL.
    alpha
        Reward KL coefficient (000 uses 0.02 for MPO-RT).
    eta
        MD step (``1/eta`` weights the trust-region KL).
    baseline, greedy_rewards
        As in :func:`compute_baseline`; for ``"remax"`` pass the greedy response's
        *transformed* reward (:func:`mpo_rt_reward`).

    Returns
    -------
    LossOutput
        As :func:`mpo_loss`, plus ``reward`` (mean transformed reward).
    """
    seq_old = _per_sample(old_logp, mask)
    seq_ref = _per_sample(ref_logp, mask)
    reward = mpo_rt_reward(preference, seq_old, seq_ref, alpha)
    adv = preference_advantages(reward, baseline, greedy_rewards=greedy_rewards)
    out = mpo_loss(logp, adv, alpha=0.0, eta=eta, old_logp=old_logp, mask=mask,
                   sample_logp=sample_logp, kl_old=kl_old, weights=weights)
    out.metrics["reward"] = reward.mean()
    return out
