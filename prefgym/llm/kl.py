"""Estimators of ``KL(pi_theta || q)`` on responses sampled by the policy itself.

Three forms, all returning one value per sequence (B,) and carrying the right
gradient in ``theta``:

:func:`token_kl_full`
    The *sequential* (token-wise) KL ``sum_t KL(pi(.|s_t) || q(.|s_t))`` summed over
    the vocabulary from full logits. This is the estimator of SPO (003 App. D) and of
    MPO's both KL terms (000 Sec. 3.3, "sequential KL", Zeng et al. 2024). The states
    ``s_t = [x, y_<t]`` come from samples; the gradient flows through each per-state
    distribution exactly (analytic / reparametrised in the token distribution) and
    ignores the effect of ``y_t`` on future states, which is the bias 003 App. D
    accepts for lower variance.
:func:`token_kl`
    The same token-wise quantity from the log-probabilities of the *sampled* tokens
    only (no (B, T, V) logits needed): a per-state score-function estimator, unbiased
    for the value and for the per-state gradient.
:func:`sequence_kl`
    The sequence-level KL ``E_{y ~ pi}[log pi(y) - log q(y)]`` from sequence
    log-probabilities, score-function gradient ``E[(log pi - log q) grad log pi]``.

Sampled estimators and off-policy reuse
----------------------------------------
With samples from a behaviour policy ``mu`` (``sample_logp``; default: the current
policy, ``logp.detach()``), ``rho = pi_theta / mu`` and ``d = log pi_theta - log q``,
the per-sample estimate is ``rho d - (rho - 1)``. Its expectation is the KL (``E_mu
rho = 1``) and its gradient ``rho d grad log pi`` is unbiased for ``grad KL`` at every
``theta``; on-policy (``rho = 1``) the value is the plain ``k1`` estimate ``d`` and the
gradient the score-function form ``d grad log pi``. Autograd of the naive ``mean(d)``
would instead give ``E[grad log pi] = 0``: that is why these helpers exist.

``q`` (reference, magnet, previous iterate) is always detached.

They sit in the ``llm`` layer (the losses of :mod:`prefgym.agents.llm.losses` and
:class:`~prefgym.llm.policy.LMPolicy` both use them; ``prefgym.agents.llm.losses.kl``
re-exports them). On a language model, :meth:`prefgym.llm.policy.LMPolicy.sequential_kl` evaluates
:func:`token_kl_full` on sampled responses in chunks of rows (one teacher-forced pass
of the policy and of each frozen model per chunk, the frozen logits without a graph);
the trainers use it with ``kl_estimator="token"`` (``MPOAlgorithm``, ``SPOAlgorithm``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sequence_kl", "token_kl", "token_kl_full", "masked_sum"]


def masked_sum(x: Tensor, mask: Tensor | None) -> Tensor:
    """Sum over the last (token) axis of ``x`` (B, T) where ``mask`` is true; a (B,) tensor."""
    if mask is None:
        return x.sum(dim=-1)
    return (x * mask.to(x.dtype)).sum(dim=-1)


def _sampled_kl(logp: Tensor, q_logp: Tensor, sample_logp: Tensor | None) -> Tensor:
    d = logp - q_logp.detach()
    if sample_logp is None:
        # on-policy: value d, gradient sg(d) * grad log pi (score function)
        return d.detach() + d.detach() * (logp - logp.detach())
    rho = torch.exp(logp - sample_logp.detach())
    return rho * d - (rho - 1.0)


def sequence_kl(logp: Tensor, q_logp: Tensor, sample_logp: Tensor | None = None) -> Tensor:
    """Per-sample estimate of the sequence KL ``KL(pi_theta || q)`` on samples ``y ~ mu``.

    Parameters
    ----------
    logp
        (B,) ``log pi_theta(y|x)`` with grad.
    q_logp
        (B,) ``log q(y|x)``; detached.
    sample_logp
        (B,) log-probability of the behaviour policy that drew ``y``; ``None`` means
        the current policy (on-policy).

    Returns
    -------
    Tensor
        (B,) estimates; their mean is an unbiased estimate of the KL and of its gradient.
    """
    return _sampled_kl(logp, q_logp, sample_logp)


def token_kl(
    logp: Tensor, q_logp: Tensor, mask: Tensor | None = None, sample_logp: Tensor | None = None
) -> Tensor:
    """Token-wise KL ``sum_t KL(pi(.|s_t) || q(.|s_t))`` from the sampled tokens' log-probs.

    ``logp``, ``q_logp``, ``sample_logp`` and ``mask`` are (B, T) per-token tensors;
    returns (B,). Each token contributes ``rho_t d_t - (rho_t - 1)`` with the per-token
    ratio ``rho_t`` (module docstring), so the gradient is, in expectation over the
    sampled token, the gradient of the per-state KL with the state held fixed, as in
    :func:`token_kl_full`.
    """
    return masked_sum(_sampled_kl(logp, q_logp, sample_logp), mask)


class _PerStateKL(torch.autograd.Function):
    """``sum_s p_s (logp_s - q_s)`` over the last axis from normalised log-probs, memory-lean backward.

    Saves only ``logp`` (which ``log_softmax`` keeps anyway) and ``q``; the backward is
    ``dKL/dlogp_s = p_s (logp_s - q_s + 1)`` (``log_softmax``'s backward then gives the
    per-state KL gradient ``p_s (logp_s - q_s - KL)`` in the logits). Autograd of the plain
    expression would keep ``p`` and ``logp - q`` as well: two more (B, T, V) tensors.
    """

    @staticmethod
    def forward(ctx, logp: Tensor, q: Tensor) -> Tensor:
        ctx.save_for_backward(logp, q)
        return (logp.exp() * (logp - q)).sum(dim=-1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        logp, q = ctx.saved_tensors
        return grad[..., None] * logp.exp() * (logp - q + 1.0), None


def token_kl_full(logits: Tensor, q_logits: Tensor, mask: Tensor | None = None, *,
                  normalized: bool = False) -> Tensor:
    """Exact token-wise KL over the vocabulary (003 App. D; 000 Sec. 3.3 sequential KL).

    Parameters
    ----------
    logits
        (B, T, V) policy logits at the response positions (normalised here with
        ``log_softmax``, so log-probabilities are accepted too), with grad.
    q_logits
        (B, T, V) logits of ``q``; detached.
    mask
        (B, T) valid response tokens.
    normalized
        Both inputs are already log-probabilities (``log_softmax`` applied): skip the
        normalisation (saves a (B, T, V) pass and tensor; used by
        :meth:`prefgym.llm.policy.LMPolicy.sequential_kl`).

    Returns
    -------
    Tensor
        (B,) ``sum_t sum_s pi(s|s_t) log(pi(s|s_t) / q(s|s_t))`` (003 App. D display).
        The backward keeps only the two (B, T, V) log-probability tensors (and is itself
        differentiable: double backward gives the exact Hessian-vector products).
    """
    logp = logits if normalized else torch.log_softmax(logits, dim=-1)
    q = q_logits.detach() if normalized else torch.log_softmax(q_logits.detach(), dim=-1)
    per_token = _PerStateKL.apply(logp, q)  # 003 App. D, inner sum over the vocabulary S
    return masked_sum(per_token, mask)
