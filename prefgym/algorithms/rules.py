"""Update rules of the five papers as pure array functions on log-policies.

Every rule maps the logits ``theta`` of a softmax policy (any leading batch
axes) and a payoff estimate ``g(a) ~ P(a > opponent) - 1/2`` to new logits.
Tabular agents feed exact payoffs ``g = A pi``; sampled and neural agents feed
estimates of the same vector. Constants added to a logit vector do not change
the policy, so every rule returns normalised log-probabilities.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "log_normalize",
    "mirror_step",
    "optimistic_step",
    "optimistic_payoff",
    "magnetic_step",
    "regularized_step",
    "geometric_mixture",
    "regression_fit",
    "spo_gradient",
    "kl_gradient",
]


def log_normalize(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(log pi, pi)`` for ``pi = softmax(logits)`` over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    z = np.exp(shifted)
    s = z.sum(axis=-1, keepdims=True)
    return shifted - np.log(s), z / s


def mirror_step(logits: np.ndarray, payoff: np.ndarray, lr: float) -> np.ndarray:
    """Entropic mirror descent (MWU): ``pi' ~ pi exp(eta g)`` (000 Sec. 2.2, 002 "OMD")."""
    return logits + lr * payoff


def optimistic_step(
    logits: np.ndarray, payoff: np.ndarray, prev_payoff: np.ndarray, lr: float
) -> np.ndarray:
    """OMWU in single-sequence form: ``pi_{t+1} ~ pi_t exp(eta (2 g_t - g_{t-1}))``.

    Exact algebra of 002 Eqs. (1)-(2) (theta_t = thetahat_t + eta g_{t-1},
    thetahat_{t+1} = thetahat_t + eta g_t); the same optimism as OMPO's
    ``Q = 2 Q(pi^t) - Q(pi^{t-1})`` in 001.
    """
    return logits + lr * (2.0 * payoff - prev_payoff)


def optimistic_payoff(payoff: np.ndarray, prev_payoff: np.ndarray) -> np.ndarray:
    """The optimistic payoff ``2 g_t - g_{t-1}`` of :func:`optimistic_step`.

    ``optimistic_step(theta, g, g_prev, eta) == mirror_step(theta, optimistic_payoff(g, g_prev), eta)``.
    001 applies it to stage rewards, ``r~_h^t = 2 r_h^t - r_h^{t-1}`` (Alg. 1), before the
    Bellman backup: Q is linear in the reward, so this is ``2 Q(pi^t, pi^t) - Q(pi^t, pi^{t-1})``.
    """
    return 2.0 * payoff - prev_payoff


def magnetic_step(
    logits: np.ndarray, payoff: np.ndarray, lr: float, alpha: float, magnet_logits: np.ndarray
) -> np.ndarray:
    """Magnetic mirror descent, closed form of 000 Eq. (4) with negative entropy.

    ``pi' ~ (pi * magnet^{eta alpha} * exp(eta g))^{1 / (1 + eta alpha)}``;
    the fixed point is the regularised NE ``pi ~ magnet exp(A pi / alpha)``.
    ``logits`` and ``magnet_logits`` must be log-probabilities.
    """
    return (logits + lr * alpha * magnet_logits + lr * payoff) / (1.0 + lr * alpha)


def geometric_mixture(logits: np.ndarray, ref_logits: np.ndarray, beta: float) -> np.ndarray:
    """``pi^{1 - beta} ref^beta`` in log space (Nash-MD's mixture, Munos et al. Eq. 8)."""
    return (1.0 - beta) * logits + beta * ref_logits


def regularized_step(
    logits: np.ndarray, payoff: np.ndarray, lr: float, tau: float, ref_logits: np.ndarray
) -> np.ndarray:
    """KL-regularised MD step ``pi' ~ pi^{1 - eta tau} ref^{eta tau} exp(eta g)``.

    002 App. D.2: "OMD (regularized)" (Nash-MD) and both half-steps of EGPO.
    """
    return geometric_mixture(logits, ref_logits, lr * tau) + lr * payoff


def regression_fit(
    logits: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray,
    steps: int,
    lr: float,
    tol: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Nested optimisation of SPPO / MPO / ONPO (002 App. D.2).

    Gradient descent on ``L(theta) = sum_y w(y) (log softmax(theta)(y) - target(y))^2``
    for at most ``steps`` steps, stopping early once successive losses differ by
    at most ``tol`` in every game of the batch. ``target`` is the log-policy of
    the exact prox step, e.g. SPPO's ``log pi_t + eta (P(y > pi_t) - 1/2)``
    (Wu et al. Eq. 4.6); it is normalised here, so the exact step is the unique
    minimiser (Wu et al. instead approximate ``log Z`` by a constant).
    ``weights`` is the sampling distribution (``pi_t``).
    Returns the fitted logits and the number of steps taken.
    """
    target = log_normalize(target)[0]
    theta = logits.copy()
    prev = None
    for k in range(steps):
        logp, pi = log_normalize(theta)
        res = weights * (logp - target)
        loss = (res * (logp - target)).sum(axis=-1)
        if prev is not None and np.all(np.abs(prev - loss) <= tol):
            return theta, k
        prev = loss
        # dL/dtheta_j = 2 (w_j r_j - pi_j sum_y w_y r_y)
        grad = 2.0 * (res - pi * res.sum(axis=-1, keepdims=True))
        theta = theta - lr * grad
    return theta, steps


def spo_gradient(
    logp: np.ndarray,
    pi: np.ndarray,
    pair_weights: np.ndarray,
    alpha: float,
    gamma: float = 0.0,
) -> np.ndarray:
    """Gradient in the logits of SPO's preference loss (003 Eqs. 9-13).

    ``pair_weights[w, l] = D(y_w > y_l)`` is the probability of the labelled pair.
    For each pair the gradient weight is ``pi_l^alpha / (pi_w^alpha + pi_l^alpha)``
    (``1/2`` for ``alpha = 0``, Eq. 10), scaled by the stop-gradient
    ``mu = (pi_w + pi_l)^gamma`` (Eq. 11, 13). Because the per-pair gradients in
    ``log pi`` sum to zero, they equal the gradients in the logits.
    """
    if alpha > 0:
        # sigma(alpha (log pi_l - log pi_w)), Eq. (13)
        diff = logp[..., None, :] - logp[..., :, None]
        err = 0.5 * (1.0 + np.tanh(0.5 * alpha * diff))
    else:
        err = np.full(pair_weights.shape[:-2] + (logp.shape[-1],) * 2, 0.5)
    M = pair_weights * err
    if gamma:
        M = M * (pi[..., :, None] + pi[..., None, :]) ** gamma
    # dL/dlog pi_k = -sum_l M[k, l] + sum_w M[w, k]
    return M.sum(axis=-2) - M.sum(axis=-1)


def kl_gradient(logp: np.ndarray, pi: np.ndarray, ref_logp: np.ndarray) -> np.ndarray:
    """Gradient of ``KL(softmax(theta) || ref)`` in the logits ``theta``."""
    d = logp - ref_logp
    return pi * (d - (pi * d).sum(axis=-1, keepdims=True))
