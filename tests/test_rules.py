"""Update rules against closed forms."""

import numpy as np
import pytest

from prefgym.agents import rules
from prefgym.simplex import kl, softmax


def test_log_normalize_is_log_softmax():
    x = np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]])
    logp, p = rules.log_normalize(x)
    assert np.allclose(p, softmax(x)) and np.allclose(np.exp(logp), p)


def test_optimistic_step_equals_two_sequence_omwu():
    """002 Eqs. (1)-(2) unrolled equal the single-sequence rule."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    A = (A - A.T) / 4
    eta = 0.7
    hat = np.zeros(5)
    g_prev = np.zeros(5)
    theta = hat + eta * g_prev
    single = theta.copy()
    for _ in range(20):
        pi = softmax(theta)
        g = A @ pi
        hat = hat + eta * g  # Eq. (2)
        theta_next = hat + eta * g  # Eq. (1) at t + 1
        single = rules.optimistic_step(single, g, g_prev, eta)
        assert np.allclose(softmax(single), softmax(theta_next), atol=1e-13)
        theta, g_prev = theta_next, g


def test_magnetic_step_is_md_on_regularized_operator():
    """000 Theorem 3.5: MMD = MD on F + alpha grad KL(.||magnet) with eta/(1 + eta alpha)."""
    rng = np.random.default_rng(1)
    logp = rules.log_normalize(rng.standard_normal(6))[0]
    mag = rules.log_normalize(rng.standard_normal(6))[0]
    g = rng.standard_normal(6) * 0.3
    eta, alpha = 0.4, 0.8
    etabar = eta / (1 + eta * alpha)
    md = logp + etabar * (g - alpha * (logp - mag))
    mmd = rules.magnetic_step(logp, g, eta, alpha, mag)
    assert np.allclose(softmax(md), softmax(mmd), atol=1e-15)


def test_regularized_step_closed_form():
    logp = np.log(np.array([0.2, 0.3, 0.5]))
    ref = np.log(np.ones(3) / 3)
    g = np.array([0.1, -0.2, 0.1])
    out = softmax(rules.regularized_step(logp, g, 0.5, 0.4, ref))
    expected = np.exp(logp) ** 0.8 * np.exp(ref) ** 0.2 * np.exp(0.5 * g)
    assert np.allclose(out, expected / expected.sum())


def test_regression_fit_converges_to_exact_prox_and_stops_early():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 4))
    target = logits + 0.3 * rng.standard_normal((3, 4))
    w = softmax(logits)
    fit, steps = rules.regression_fit(logits, target, w, steps=5000, lr=1.0, tol=1e-15)
    assert np.allclose(softmax(fit), softmax(target), atol=1e-6)
    assert steps < 5000
    few, k = rules.regression_fit(logits, target, w, steps=2, lr=1.0)
    assert k == 2 and not np.allclose(softmax(few), softmax(target), atol=1e-3)


def _spo_loss(theta, D, alpha, gamma, ref, beta, pi_stop):
    logp = theta - np.log(np.exp(theta).sum())
    d = logp[:, None] - logp[None, :]
    per = np.logaddexp(0, -alpha * d) / alpha if alpha > 0 else -0.5 * d
    mu = (pi_stop[:, None] + pi_stop[None, :]) ** gamma
    p = np.exp(logp)
    return (D * mu * per).sum() + beta * (p * (logp - ref)).sum()


@pytest.mark.parametrize(("alpha", "gamma", "beta"), [(1.0, 0.0, 0.0), (0.5, 1.0, 0.3), (0.0, 0.0, 0.1)])
def test_spo_and_kl_gradients_match_finite_differences(alpha, gamma, beta):
    rng = np.random.default_rng(3)
    n = 5
    P = 1 / (1 + np.exp(-(rng.standard_normal((n, n)))))
    P = (P + 1 - P.T) / 2
    D = P / n**2
    theta = rng.standard_normal(n)
    ref = rules.log_normalize(rng.standard_normal(n))[0]
    logp, pi = rules.log_normalize(theta)
    grad = rules.spo_gradient(logp, pi, D, alpha, gamma) + beta * rules.kl_gradient(logp, pi, ref)
    eps = 1e-6
    num = np.array([
        (_spo_loss(theta + eps * e, D, alpha, gamma, ref, beta, pi)
         - _spo_loss(theta - eps * e, D, alpha, gamma, ref, beta, pi)) / (2 * eps)
        for e in np.eye(n)
    ])
    assert np.allclose(grad, num, atol=1e-8)


def test_kl_helper():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    assert kl(p, q) == pytest.approx(np.log(2))
