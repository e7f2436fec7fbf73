"""Reference solutions computed independently of the agents' update rules.

- :func:`regularized_nash`: the KL-regularised NE ``pi ~ ref exp(A pi / tau)``
  (000's MMD fixed point, 002's regularised game) by a Newton-type root solve
  (MINPACK ``hybr`` with the analytic Jacobian) and continuation in ``tau``;
- :func:`max_entropy_nash`: the NE closest in KL to the uniform policy, the
  limit OMWU predicts from a uniform start (002 Remark 2), by its convex dual;
- :func:`l1_distance_to_nash_set`: L1 distance of a policy to the NE polytope
  ``{x in simplex : A x <= 0}`` by linear programming;
- :func:`smallest_positive_singular_value`: ``sigma_min`` of 002's Figure 2 titles.

All take one ``(n, n)`` skew-symmetric payoff; callers loop over a batch.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, minimize, root
from scipy.special import log_softmax, softmax

__all__ = [
    "regularized_nash",
    "max_entropy_nash",
    "l1_distance_to_nash_set",
    "smallest_positive_singular_value",
]


def _fixed_point_residual(theta: np.ndarray, payoff: np.ndarray, log_ref: np.ndarray, tau: float):
    pi = softmax(theta)
    new_logits = log_ref + payoff @ pi / tau
    res = theta - log_softmax(new_logits)
    new = softmax(new_logits)
    n = theta.shape[0]
    jac = np.eye(n) - (np.eye(n) - new[None, :]) @ (payoff / tau) @ (np.diag(pi) - np.outer(pi, pi))
    return res, jac


def regularized_nash(
    payoff: np.ndarray, tau: float, reference: np.ndarray | None = None, tol: float = 1e-14
) -> np.ndarray:
    """The regularised NE ``pi = softmax(log ref + A pi / tau)`` of one game.

    Solved for ``theta = log pi`` with a root finder, tracing ``tau`` down from
    ``max(tau, 1)`` geometrically so that each solve starts near its root.

    Raises
    ------
    RuntimeError
        If the final residual exceeds ``1e-10``.
    """
    payoff = np.asarray(payoff, float)
    n = payoff.shape[-1]
    ref = np.full(n, 1.0 / n) if reference is None else np.asarray(reference, float)
    log_ref = np.log(ref)
    theta = log_ref.copy()
    for t in np.geomspace(max(tau, 1.0), tau, 40 if tau < 1.0 else 1):
        sol = root(lambda th, t=t: _fixed_point_residual(th, payoff, log_ref, t), theta, jac=True,
                   method="hybr", tol=tol)
        theta = log_softmax(sol.x)
    residual = np.abs(_fixed_point_residual(theta, payoff, log_ref, tau)[0]).max()
    if not residual < 1e-10:
        raise RuntimeError(f"regularised NE solve did not converge (residual {residual:.2e})")
    return softmax(theta)


def max_entropy_nash(payoff: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """``argmin_{pi : A pi = 0} KL(pi || ref)``: the NE OMWU converges to (002 Remark 2).

    Valid when a full-support NE exists (002 Assumption 1, so NE = ``{A pi = 0}``).
    Minimises the convex dual ``f(w) = log sum_a ref(a) exp((A w)(a))``, whose
    minimiser gives ``pi* = softmax(log ref + A w*)``, then polishes with Newton
    steps on the stationarity condition.
    """
    A = np.asarray(payoff, float)
    n = A.shape[-1]
    log_ref = np.log(np.full(n, 1.0 / n) if reference is None else np.asarray(reference, float))

    def fun(w):
        z = log_ref + A @ w
        pi = softmax(z)
        return float(np.log(np.exp(z - z.max()).sum()) + z.max()), A.T @ pi

    def hess(w):
        pi = softmax(log_ref + A @ w)
        return A.T @ (np.diag(pi) - np.outer(pi, pi)) @ A

    w = minimize(fun, np.zeros(n), jac=True, hess=hess, method="trust-exact",
                 options={"gtol": 1e-12, "maxiter": 500}).x
    for _ in range(5):  # Newton polish; the Hessian is singular along null(A)
        w = w - np.linalg.lstsq(hess(w), fun(w)[1], rcond=1e-12)[0]
    return softmax(log_ref + A @ w)


def l1_distance_to_nash_set(payoff: np.ndarray, policy: np.ndarray) -> float:
    """``min ||policy - x||_1`` over Nash equilibria ``x`` (``A x <= 0``, ``x`` in the simplex)."""
    A = np.asarray(payoff, float)
    pi = np.asarray(policy, float)
    n = A.shape[-1]
    eye = np.eye(n)
    # variables (x, s): minimise sum s with s >= |pi - x|
    c = np.concatenate([np.zeros(n), np.ones(n)])
    A_ub = np.block([[A, np.zeros((n, n))], [eye, -eye], [-eye, -eye]])
    b_ub = np.concatenate([np.zeros(n), pi, -pi])
    A_eq = np.concatenate([np.ones(n), np.zeros(n)])[None]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0],
                  bounds=[(0.0, None)] * (2 * n), method="highs")
    if res.status != 0:  # pragma: no cover - the NE set is never empty
        raise RuntimeError(f"LP for the distance to the NE set failed: {res.message}")
    return float(res.fun)


def smallest_positive_singular_value(payoff: np.ndarray, rtol: float = 1e-10) -> float:
    """Smallest singular value of ``A`` above ``rtol * max`` (002's ``sigma_min``)."""
    s = np.linalg.svd(np.asarray(payoff, float), compute_uv=False)
    return float(s[s > rtol * s.max()].min())
