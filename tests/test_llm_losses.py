"""LLM losses: hand-computed values, paper gradients, stop-gradients, tabular minimisers.

Hand-computed values use a 2-token toy: a response's sequence log-prob is the sum of
its two token log-probs, written out with ``math.log``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from prefgym.agents import rules
from prefgym.agents.llm import losses as L
from prefgym.algorithms import SPECS


@pytest.fixture(autouse=True)
def float64_default():
    """This module computes in float64; restore the default dtype for the other modules."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ---------------------------------------------------------------- 2-token toy
LW = math.log(0.5) + math.log(0.4)  # policy, chosen response y_w = (a, b)
LL = math.log(0.3) + math.log(0.2)  # policy, rejected response y_l
RW = math.log(0.4) + math.log(0.4)  # reference, y_w
RL = math.log(0.3) + math.log(0.3)  # reference, y_l


def t(*xs: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(list(xs), requires_grad=grad)


def sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def approx(x: torch.Tensor, v: float, tol: float = 1e-12) -> bool:
    return abs(float(x.detach() if isinstance(x, torch.Tensor) else x) - v) < tol


# ---------------------------------------------------------------- tabular helpers
def _game(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random preference matrix ``P(a > b)``, logits of ``pi_t`` and of ``pi_{t-1}``."""
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((n, n))
    P = 0.5 + 0.5 * np.tanh(S - S.T)
    return P, rng.standard_normal(n), rng.standard_normal(n)


def _minimise(loss_fn, n: int, init: np.ndarray | None = None, iters: int = 200) -> np.ndarray:
    """Minimise ``loss_fn(log_softmax(theta))`` over logits with L-BFGS; returns the normalised log-policy."""
    theta = torch.tensor(np.zeros(n) if init is None else init, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=iters, tolerance_grad=1e-14,
                            tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(torch.log_softmax(theta, dim=0))
        loss.backward()
        return loss

    opt.step(closure)
    return torch.log_softmax(theta.detach(), dim=0).numpy()


def _gd_fixed_point(loss_fn, init: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """Gradient descent on a surrogate whose gradient is only exact at the current point (sg weights)."""
    theta = torch.tensor(init, requires_grad=True)
    for _ in range(steps):
        logp = torch.log_softmax(theta, dim=0)
        (g,) = torch.autograd.grad(loss_fn(logp, logp.exp().detach()), theta)
        with torch.no_grad():
            theta -= lr * g
    return torch.log_softmax(theta.detach(), dim=0).numpy()


def _lognorm(x: np.ndarray) -> np.ndarray:
    return rules.log_normalize(x)[0]


# ================================================================ output type
def test_loss_output_unpacks_and_metrics_are_detached():
    out = L.dpo_loss(t(LW, grad=True), t(LL, grad=True), t(RW), t(RL), beta=0.5)
    loss, metrics = out
    assert loss is out.loss and loss.dim() == 0 and loss.requires_grad
    assert all(not m.requires_grad and m.dim() == 0 for m in metrics.values())


# ================================================================ DPO / IPO / SLiC-HF
def test_dpo_value_and_gradient():
    beta = 0.5
    h = (LW - RW) - (LL - RL)
    w, l_ = t(LW, grad=True), t(LL, grad=True)
    out = L.dpo_loss(w, l_, t(RW), t(RL), beta=beta)
    assert approx(out.loss, math.log(1.0 + math.exp(-beta * h)))
    assert approx(out.metrics["margin"], beta * h) and approx(out.metrics["accuracy"], 1.0)
    assert approx(out.metrics["reward_chosen"], beta * (LW - RW))
    out.loss.backward()
    # standard DPO gradient: -beta sigma(-beta h) (grad log pi_w - grad log pi_l)
    assert approx(w.grad[0], -beta * sig(-beta * h)) and approx(l_.grad[0], beta * sig(-beta * h))


def test_ipo_value_and_gradient():
    beta = 0.25
    h = (LW - RW) - (LL - RL)
    w, l_ = t(LW, grad=True), t(LL, grad=True)
    out = L.ipo_loss(w, l_, t(RW), t(RL), beta=beta)
    assert approx(out.loss, (h - 1.0 / (2 * beta)) ** 2)
    out.loss.backward()
    assert approx(w.grad[0], 2 * (h - 2.0)) and approx(l_.grad[0], -2 * (h - 2.0))


def test_slic_hf_value():
    delta, lam = 2.0, 0.1
    reg = math.log(0.6) + math.log(0.7)  # log pi(y_ref|x) of a reference sample
    out = L.slic_hf_loss(t(LW), t(LL), delta=delta, reg_logp=t(reg), lam=lam)
    hinge = max(0.0, delta - (LW - LL))
    assert hinge > 0
    assert approx(out.loss, hinge - lam * reg)
    assert approx(out.metrics["nll_reference"], -reg)
    assert approx(L.slic_hf_loss(t(LW), t(LL), delta=0.5).loss, 0.0)  # margin log(10/3) > 0.5


# ================================================================ SPO
def test_spo_pairwise_values():
    alpha = 0.5
    pw, pl = 0.5 * 0.4, 0.3 * 0.2
    base = -math.log(pw**alpha / (pw**alpha + pl**alpha)) / alpha  # 003 Eq. (9)
    assert approx(L.spo_loss(t(LW), t(LL), alpha=alpha).loss, base)
    mu = (pw + pl) ** 1.5  # 003 Eq. (11) with gamma = 1.5
    assert approx(L.spo_loss(t(LW), t(LL), alpha=alpha, gamma=1.5, mu_scale="none").loss, mu * base)
    assert approx(L.spo_loss(t(LW), t(LL), alpha=alpha, gamma=1.5, mu_scale="max").loss, base)
    assert approx(L.spo_loss(t(LW), t(LL), alpha=0.0).loss, -0.5 * math.log(pw / pl))  # Eq. (10)
    out = L.spo_loss(t(LW), t(LL), alpha=alpha)
    assert approx(out.metrics["error_weight"], pl**alpha / (pw**alpha + pl**alpha))


def test_spo_mu_scale_keeps_ratios_and_avoids_underflow():
    lw = t(-900.0, -905.0)
    ll = t(-901.0, -903.0)
    mu = L.spo_weights(torch.logaddexp(lw, ll), 1.0, "max")
    raw_ratio = math.exp(np.logaddexp(-900, -901) - np.logaddexp(-905, -903))
    assert float(mu.max()) == 1.0 and approx(mu[0] / mu[1], raw_ratio, 1e-9)
    assert float(L.spo_weights(torch.logaddexp(lw, ll), 1.0, "none").max()) == 0.0  # why "max" is the default
    assert approx(L.spo_weights(torch.logaddexp(lw, ll), 1.0, "mean").mean(), 1.0)


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_spo_gradient_is_eq13_with_stop_gradient_mu(alpha):
    rng = np.random.default_rng(0)
    lw = torch.tensor(np.log(rng.uniform(0.05, 0.5, 4)), requires_grad=True)
    ll = torch.tensor(np.log(rng.uniform(0.05, 0.5, 4)), requires_grad=True)
    gamma = 1.3
    L.spo_loss(lw, ll, alpha=alpha, gamma=gamma, mu_scale="none").loss.backward()
    pw, pl = lw.detach().exp(), ll.detach().exp()
    mu = (pw + pl) ** gamma
    err = pl**alpha / (pw**alpha + pl**alpha)  # 1/2 at alpha = 0
    expected = -mu * err / 4  # 003 Eq. (13), batch mean over 4 pairs
    assert torch.allclose(lw.grad, expected, atol=1e-14) and torch.allclose(ll.grad, -expected, atol=1e-14)


def test_spo_gradient_matches_tabular_rule():
    """Autograd of the pair loss over all (w, l) with weights D equals ``rules.spo_gradient``."""
    n, alpha, gamma = 5, 0.7, 0.5
    P, theta0, _ = _game(n, 1)
    D = P / n**2
    idx_w, idx_l = np.nonzero(~np.eye(n, dtype=bool))
    theta = torch.tensor(theta0, requires_grad=True)
    logp = torch.log_softmax(theta, 0)
    D_t = torch.tensor(D[idx_w, idx_l])
    loss = L.spo_loss(logp[idx_w], logp[idx_l], alpha=alpha, gamma=gamma, mu_scale="none", weights=D_t).loss
    (g,) = torch.autograd.grad(loss * D_t.sum(), theta)
    lp, pi = rules.log_normalize(theta0)
    Doff = D * (1 - np.eye(n))
    assert np.allclose(g.numpy(), rules.spo_gradient(lp, pi, Doff, alpha, gamma), atol=1e-13)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_spo_minimiser_is_softmax_r_over_alpha(alpha):
    """003 Theorem 1: BT-consistent full-support pair data -> unique minimiser Softmax(r / alpha)."""
    n = 5
    rng = np.random.default_rng(2)
    r = rng.standard_normal(n)
    s = rng.uniform(0.5, 1.5, (n, n))
    s = s + s.T  # symmetric positive pair-sampling weights
    idx_w, idx_l = np.nonzero(~np.eye(n, dtype=bool))
    bt = s / (1 + np.exp(-(r[:, None] - r[None, :])))  # D(w, l) = s sigma(r_w - r_l), 003 footnote 3
    D = torch.tensor(bt[idx_w, idx_l])
    fit = _minimise(lambda lp: L.spo_loss(lp[idx_w], lp[idx_l], alpha=alpha, weights=D).loss, n)
    assert np.allclose(np.exp(fit), np.exp(_lognorm(r / alpha)), atol=1e-7)
    # 003 Theorem 2: the stop-gradient weights mu = (pi_w + pi_l)^gamma keep the fixed point
    weighted = lambda lp, _: L.spo_loss(lp[idx_w], lp[idx_l], alpha=alpha, gamma=1.0, weights=D).loss  # noqa: E731
    fp = _gd_fixed_point(weighted, np.zeros(n), lr=10.0, steps=1500)
    assert np.allclose(np.exp(fp), np.exp(_lognorm(r / alpha)), atol=1e-6)


def test_spo_best_of_n_and_ranked_values():
    alpha = 0.5
    lp = [LW, LL, RW]  # three 2-token responses
    p = [math.exp(x) for x in lp]
    den = sum(x**alpha for x in p)
    out = L.spo_best_of_n_loss(t(*lp)[None], torch.tensor([0]), alpha=alpha)
    assert approx(out.loss, -math.log(p[0] ** alpha / den) / alpha)  # 003 Eq. (14)
    # ranking y_2 > y_0 > y_1, 003 Eq. (15) with mu = (1, 1)
    rank = torch.tensor([[2, 0, 1]])
    second = math.log(p[0] ** alpha / (p[0] ** alpha + p[1] ** alpha))
    exp15 = -(math.log(p[2] ** alpha / den) + second) / alpha
    assert approx(L.spo_ranked_loss(t(*lp)[None], rank, alpha=alpha).loss, exp15)
    # mu_k = 0 for k >= 2 reduces Eq. (15) to Eq. (14) (003 Sec. 5)
    red = L.spo_ranked_loss(t(*lp)[None], rank, alpha=alpha, rank_weights=[1.0, 0.0]).loss
    assert approx(red, L.spo_best_of_n_loss(t(*lp)[None], torch.tensor([2]), alpha=alpha).loss)
    gam = L.spo_ranked_loss(t(*lp)[None], rank, alpha=alpha, gamma=1.0, mu_scale="none").loss
    mus = (p[0] + p[1] + p[2], p[0] + p[1])
    exp_g = -(mus[0] * math.log(p[2] ** alpha / den)
              + mus[1] * math.log(p[0] ** alpha / (p[0] ** alpha + p[1] ** alpha))) / alpha
    assert approx(gam, exp_g)
    with pytest.raises(ValueError):
        L.spo_best_of_n_loss(t(*lp)[None], torch.tensor([0]), alpha=0.0)


def test_token_kl_full_is_spo_global_kl():
    """003 App. D: sum over tokens of the per-state KL over the vocabulary (2 tokens, vocabulary of 2)."""
    p = [[0.5, 0.5], [0.8, 0.2]]
    q = [[0.25, 0.75], [0.5, 0.5]]
    logits = torch.tensor([[[math.log(x) for x in row] for row in p]], requires_grad=True)
    ref = torch.tensor([[[math.log(x) for x in row] for row in q]])
    expected = (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
                + 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5))
    out = L.token_kl_full(logits, ref, torch.ones(1, 2))
    assert approx(out.mean(), expected)
    masked = L.token_kl_full(logits, ref, torch.tensor([[1.0, 0.0]])).mean()
    assert approx(masked, 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75))
    assert torch.autograd.gradcheck(lambda x: L.token_kl_full(x, ref).mean(), (logits,))


# ================================================================ KL estimators
def test_sampled_kl_estimators_are_exact_in_expectation_on_and_off_policy():
    n = 5
    _, theta0, other = _game(n, 3)
    q = _lognorm(np.random.default_rng(4).standard_normal(n))
    lp, pi = rules.log_normalize(theta0)
    exact_val = float((pi * (lp - q)).sum())
    exact_grad = rules.kl_gradient(lp, pi, q)
    for sample in (None, _lognorm(other)):  # on-policy, then samples from another policy mu
        theta = torch.tensor(theta0, requires_grad=True)
        logp = torch.log_softmax(theta, 0)
        w = logp.exp().detach() if sample is None else torch.tensor(np.exp(sample))
        s = None if sample is None else torch.tensor(sample)
        tok = L.token_kl(logp[:, None], torch.tensor(q)[:, None], torch.ones(n, 1),
                         None if s is None else s[:, None])
        for est in (L.sequence_kl(logp, torch.tensor(q), s), tok):
            val = L.weighted_mean(est, w)
            (g,) = torch.autograd.grad(val, theta, retain_graph=True)
            assert approx(val, exact_val, 1e-12) and np.allclose(g.numpy(), exact_grad, atol=1e-13)


def test_token_kl_full_gradient_is_per_state_kl_gradient():
    rng = np.random.default_rng(5)
    lg, rf = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    logits = torch.tensor(lg, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    (g,) = torch.autograd.grad(L.token_kl_full(logits, torch.tensor(rf), mask).sum(), logits)
    lp, pi = rules.log_normalize(lg)
    expected = rules.kl_gradient(lp, pi, rules.log_normalize(rf)[0]) * mask.numpy()[..., None]
    assert np.allclose(g.numpy(), expected, atol=1e-14)


# ================================================================ regression losses (SPPO, OMPO, MPO of 001)
def test_sppo_value():
    eta, P = 0.5, 0.7
    out = L.sppo_loss(t(LW), t(RW), t(P), eta=eta)
    assert approx(out.loss, ((LW - RW) - eta * (P - 0.5)) ** 2)  # 002 App. D.2 SPPO regression
    out_z = L.sppo_loss(t(LW), t(RW), t(P), eta=eta, log_z=0.1)
    assert approx(out_z.loss, ((LW - RW) - (eta * P - 0.1)) ** 2)


def test_sppo_minimiser_is_mirror_step():
    n, eta = 4, 0.8
    P, theta_t, _ = _game(n, 6)
    lpt, pit = rules.log_normalize(theta_t)
    win = P @ pit  # P(y > pi_t), exact
    log_z = math.log(float((pit * np.exp(eta * win)).sum()))  # exact log Z_t
    fit = _minimise(lambda lp: L.sppo_loss(lp, torch.tensor(lpt), torch.tensor(win), eta=eta, log_z=log_z,
                                           weights=torch.tensor(pit)).loss, n, init=theta_t)
    assert np.allclose(fit, _lognorm(rules.mirror_step(theta_t, win - 0.5, eta)), atol=1e-8)
    # with SPPO's constant log Z = eta/2 the minimiser is near, not at, the exact step
    approx_fit = _minimise(lambda lp: L.sppo_loss(lp, torch.tensor(lpt), torch.tensor(win), eta=eta,
                                                  weights=torch.tensor(pit)).loss, n, init=theta_t)
    assert np.abs(np.exp(approx_fit) - np.exp(fit)).max() < 0.05


def test_ompo_value_and_q_estimate():
    beta, H, h = 0.1, 3, 2
    cur = t(0.6, 0.7)  # preferences at turns h, h+1 against the current-iterate continuation
    prev = t(0.5, 0.4)  # ... against the previous iterate's continuation
    q = L.ompo_q_estimate(cur[None], prev[None], turn_mask=torch.ones(1, 2))
    q_hand = (2 * 0.6 - 0.5) + (2 * 0.7 - 0.4)  # 001 Eq. (2)
    assert approx(q, q_hand)
    out = L.ompo_loss(t(LW), t(RW), q, beta=beta, horizon=H, step=h)
    assert approx(out.loss, (LW - RW - beta * q_hand + beta * (H - h + 1) / 2) ** 2)  # 001 Alg. 2
    assert approx(L.ompo_q_estimate(t(0.6)), 0.6)  # first iteration: Q_hat = P


def test_ompo_ties_give_zero_target():
    """001 Sec. 3.2 / notes claim 16: all-tie preferences -> target 0 -> pi_{t+1} = pi_t at every turn."""
    H = 3
    for h in range(1, H + 1):
        rem = H - h + 1
        half = torch.full((1, rem), 0.5)
        for prev in (None, half):
            q = L.ompo_q_estimate(half, prev, turn_mask=torch.ones(1, rem))
            out = L.ompo_loss(t(LW), t(LW), q, beta=0.3, horizon=H, step=h)
            assert approx(out.loss, 0.0, 1e-24)


def test_ompo_minimiser_is_optimistic_step():
    n, beta = 4, 0.6
    P, theta_t, theta_prev = _game(n, 7)
    lpt, pit = rules.log_normalize(theta_t)
    g, g_prev = P @ pit - 0.5, P @ rules.log_normalize(theta_prev)[1] - 0.5
    q = L.ompo_q_estimate(torch.tensor(g + 0.5), torch.tensor(g_prev + 0.5))
    log_z = math.log(float((pit * np.exp(beta * q.numpy())).sum()))
    fit = _minimise(lambda lp: L.ompo_loss(lp, torch.tensor(lpt), q, beta=beta, log_z=log_z,
                                           weights=torch.tensor(pit)).loss, n, init=theta_t)
    expected = rules.mirror_step(theta_t, rules.optimistic_payoff(g, g_prev), beta)
    assert np.allclose(fit, _lognorm(expected), atol=1e-8)
    assert np.allclose(fit, _lognorm(rules.optimistic_step(theta_t, g, g_prev, beta)), atol=1e-8)


def test_mpo_regression_value_and_h1_equals_sppo():
    beta, H, h, q = 0.2, 4, 3, 1.3
    out = L.mpo_regression_loss(t(LW), t(RW), t(q), beta=beta, horizon=H, step=h)
    assert approx(out.loss, (LW - RW - beta * (q - (H - h + 1) / 2)) ** 2)  # 001 Alg. 4
    a = L.mpo_regression_loss(t(LW), t(RW), t(0.7), beta=beta).loss
    assert approx(a, float(L.sppo_loss(t(LW), t(RW), t(0.7), eta=beta).loss))


# ================================================================ spec steps as generalised IPO targets
class _MenuInputs:
    """StepInputs of an enumerated menu with exact payoffs ``P softmax(opponent) - 1/2``."""

    def __init__(self, P, logits, lr, payoffs=None, reference=None):
        self.P, self.logits, self.lr, self.reference, self.magnet = P, logits, lr, reference, None
        self._payoffs = payoffs or {}

    def payoff(self, opponent="current"):
        if isinstance(opponent, str):
            if opponent in self._payoffs:
                return self._payoffs[opponent]
            opponent = self.logits
        return self.P @ rules.log_normalize(np.asarray(opponent))[1] - 0.5


def _spec_target_loss(name, logp, inputs, hp=None):
    """The LLM adapter's loss: generalised IPO towards the spec's step (base 0)."""
    step = torch.as_tensor(SPECS[name].step(inputs, hp))
    return L.generalized_ipo_loss(logp, step[None], base_logp=torch.zeros_like(step)[None])


def test_generalized_ipo_paired_value():
    eta = 0.4
    bw, bl = math.log(0.45) + math.log(0.4), math.log(0.35) + math.log(0.2)  # base = pi_t
    gw, gl = 2 * 0.7 - 0.6, 2 * 0.4 - 0.5  # OMWU's 2 P(y > pi_t) - P(y > pi_{t-1})
    out = L.generalized_ipo_loss(t(LW), t(eta * gw), base_logp=t(bw), logp_other=t(LL),
                                 target_other=t(eta * gl), base_logp_other=t(bl))
    assert approx(out.loss, ((LW - bw) - (LL - bl) - eta * (gw - gl)) ** 2)
    assert approx(out.metrics["target_contrast"], eta * abs(gw - gl))
    # default base = the current policy (stop-gradient): the value is the squared target contrast
    cur = L.generalized_ipo_loss(t(LW), t(eta * 0.7), logp_other=t(LL), target_other=t(eta * 0.4))
    assert approx(cur.loss, (eta * (0.7 - 0.4)) ** 2)


def test_omwu_spec_target_minimiser_is_optimistic_step_and_one_step_is_the_rule():
    n, eta = 5, 0.9
    P, theta_t, theta_prev = _game(n, 8)
    lpt, pit = rules.log_normalize(theta_t)
    win, win_prev = P @ pit, P @ rules.log_normalize(theta_prev)[1]
    inputs = _MenuInputs(P, lpt, eta, {"current": win - 0.5, "previous": win_prev - 0.5})
    fit = _minimise(lambda lp: _spec_target_loss("omwu", lp[None], inputs).loss, n)
    expected = _lognorm(rules.optimistic_step(theta_t, win - 0.5, win_prev - 0.5, eta))
    assert np.allclose(fit, expected, atol=1e-8)  # exact: log Z cancels in the contrast
    # one gradient step from pi_t is the rule with step 4 lr eta / n
    theta = torch.tensor(theta_t, requires_grad=True)
    loss = _spec_target_loss("omwu", torch.log_softmax(theta, 0)[None], inputs).loss
    (g,) = torch.autograd.grad(loss, theta)
    opt = 2 * win - win_prev
    assert np.allclose(g.numpy(), -(4 * eta / n) * (opt - opt.mean()), atol=1e-14)
    lr = 0.3
    stepped = _lognorm(theta_t - lr * g.numpy())
    assert np.allclose(stepped, _lognorm(rules.optimistic_step(theta_t, win, win_prev, 4 * lr * eta / n)))


def test_nash_md_spec_target_minimiser_is_regularized_step_against_the_mixture():
    n, eta, tau = 4, 0.7, 0.5
    P, theta_t, ref = _game(n, 10)
    lpt, _ = rules.log_normalize(theta_t)
    lref = _lognorm(ref)
    inputs = _MenuInputs(P, lpt, eta, reference=lref)
    fit = _minimise(lambda lp: _spec_target_loss("nash_md", lp[None], inputs,
                                                 SimpleNamespace(tau=tau, mixture=None)).loss, n)
    mix = rules.log_normalize(rules.geometric_mixture(lpt, lref, eta * tau))[1]  # Munos et al. Eq. (8)
    assert np.allclose(fit, _lognorm(rules.regularized_step(lpt, P @ mix - 0.5, eta, tau, lref)), atol=1e-8)


# ================================================================ MPO / MPO-RT
def test_baselines_and_advantages():
    r = t(0.7, 0.2)
    assert torch.allclose(L.preference_advantages(r, "remax", greedy_rewards=t(0.6, 0.1)), t(0.1, 0.1))
    assert torch.allclose(L.preference_advantages(r, "half"), t(0.2, -0.3))
    assert torch.allclose(L.preference_advantages(r, "none"), r)
    g = torch.tensor([[0.9, 0.3, 0.6]])
    assert torch.allclose(L.preference_advantages(g, "loo"), g - torch.tensor([[0.45, 0.75, 0.6]]))
    assert torch.allclose(L.compute_baseline(g, "remax", greedy_rewards=t(0.5)), torch.full((1, 3), 0.5))
    with pytest.raises(ValueError):
        L.compute_baseline(r, "loo")


def test_mpo_value_sequence_and_token_level():
    alpha, eta = 0.2, 2.0
    pref, greedy = 0.7, 0.55  # P(y1 > y2), ReMax baseline P(y_greedy > y2)
    mag = math.log(0.3) + math.log(0.5)  # magnet log-prob of y1
    adv = L.preference_advantages(t(pref), "remax", greedy_rewards=t(greedy))
    out = L.mpo_loss(t(LW), adv, alpha=alpha, eta=eta, magnet_logp=t(mag), old_logp=t(RW))
    # -A log pi + alpha (log pi - log magnet) + (1/eta)(log pi - log pi_k): on-policy k1 values
    expected = -(pref - greedy) * LW + alpha * (LW - mag) + (LW - RW) / eta
    assert approx(out.loss, expected)
    assert approx(out.metrics["kl_magnet"], LW - mag) and approx(out.metrics["kl_old"], (LW - RW))
    # token level with the same per-token log-probs sums to the same value (sequential KL, sampled tokens)
    tok = lambda a, b: torch.tensor([[math.log(a), math.log(b)]])  # noqa: E731
    out_t = L.mpo_loss(tok(0.5, 0.4), adv, alpha=alpha, eta=eta, magnet_logp=tok(0.3, 0.5),
                       old_logp=tok(0.4, 0.4), mask=torch.ones(1, 2))
    assert approx(out_t.loss, expected)
    assert approx(L.mpo_loss(t(LW), adv, alpha=0.0, eta=math.inf).loss, -(pref - greedy) * LW)


def test_mpo_rt_value():
    alpha, eta, pref = 0.02, 1.5, 0.7
    greedy_reward = float(L.mpo_rt_reward(t(0.6), t(-1.0), t(-1.2), alpha))
    assert approx(greedy_reward, 0.6 - alpha * 0.2)
    out = L.mpo_rt_loss(t(LW), t(pref), ref_logp=t(RL), old_logp=t(RW), alpha=alpha, eta=eta,
                        greedy_rewards=t(greedy_reward))
    reward = pref - alpha * (RW - RL)  # 000 Alg. 2 line 6, log pi at sampling time (pi_k)
    assert approx(out.metrics["reward"], reward)
    assert approx(out.loss, -(reward - greedy_reward) * LW + (LW - RW) / eta)


def _mpo_tabular(n: int, seed: int):
    P, theta_k, mag = _game(n, seed)
    lpk, pik = rules.log_normalize(theta_k)
    return P @ pik, lpk, _lognorm(mag)  # A = P(y > opponent) with opponent pi_k, constant in theta


def test_mpo_policy_gradient_matches_closed_form():
    """Autograd of the MPO surrogate (exact expectation, on-policy) = -grad Psi of 000 Eq. (8)."""
    n, alpha, eta = 5, 0.3, 0.7
    A, lpk, lmag = _mpo_tabular(n, 11)
    theta0 = lpk + np.random.default_rng(12).standard_normal(n) * 0.3  # away from pi_k: trust region active
    theta = torch.tensor(theta0, requires_grad=True)
    logp = torch.log_softmax(theta, 0)
    loss = L.mpo_loss(logp, torch.tensor(A - 0.5), alpha=alpha, eta=eta, magnet_logp=torch.tensor(lmag),
                      old_logp=torch.tensor(lpk), weights=logp.exp().detach()).loss
    (g,) = torch.autograd.grad(loss, theta)
    lp, pi = rules.log_normalize(theta0)
    grad_EA = pi * (A - (pi * A).sum())  # grad_theta E_pi[A]
    expected = -grad_EA + alpha * rules.kl_gradient(lp, pi, lmag) + rules.kl_gradient(lp, pi, lpk) / eta
    assert np.allclose(g.numpy(), expected, atol=1e-14)
    # the importance-weighted form has the same gradient at the sampling policy
    logp = torch.log_softmax(theta, 0)
    loss_is = L.mpo_loss(logp, torch.tensor(A - 0.5), alpha=alpha, eta=eta, magnet_logp=torch.tensor(lmag),
                         old_logp=torch.tensor(lpk), sample_logp=logp.detach(),
                         weights=logp.exp().detach()).loss
    assert np.allclose(torch.autograd.grad(loss_is, theta)[0].numpy(), expected, atol=1e-14)


def test_mpo_fixed_point_is_magnetic_step_and_mpo_rt_is_regularized_step():
    n, alpha, eta = 4, 0.5, 1.0
    A, lpk, lmag = _mpo_tabular(n, 13)
    At, lk, lm = torch.tensor(A), torch.tensor(lpk), torch.tensor(lmag)
    fp = _gd_fixed_point(lambda lp, w: L.mpo_loss(lp, At - 0.5, alpha=alpha, eta=eta, magnet_logp=lm,
                                                  old_logp=lk, weights=w).loss, lpk, lr=1.0, steps=600)
    assert np.allclose(fp, _lognorm(rules.magnetic_step(lpk, A, eta, alpha, lmag)), atol=1e-9)
    # MPO-RT (magnet = reference in the reward): the KL-regularised MD step, = MMD with eta / (1 - eta alpha)
    alpha_rt = 0.4
    rt = lambda lp, w: L.mpo_rt_loss(lp, At, ref_logp=lm, old_logp=lk, alpha=alpha_rt, eta=eta,  # noqa: E731
                                     baseline="half", weights=w).loss
    fp_rt = _gd_fixed_point(rt, lpk, lr=1.0, steps=600)
    expected = _lognorm(rules.regularized_step(lpk, A, eta, alpha_rt, lmag))
    assert np.allclose(fp_rt, expected, atol=1e-9)
    eta_mmd = eta / (1 - eta * alpha_rt)
    assert np.allclose(expected, _lognorm(rules.magnetic_step(lpk, A, eta_mmd, alpha_rt, lmag)))


# ================================================================ AIHF
def test_aihf_dpo_and_self_play_values():
    beta, w1 = 0.5, 0.01
    demo = math.log(0.6) + math.log(0.7)
    ref_demo = math.log(0.5) + math.log(0.5)
    h = (LW - RW) - (LL - RL)
    dpo = math.log(1 + math.exp(-beta * h))
    out = L.aihf_dpo_loss(t(demo), t(LW), t(LL), t(RW), t(RL), beta=beta, w1=w1)
    assert approx(out.loss, -w1 * demo + dpo)  # 004 Eq. (10), negated
    assert approx(L.aihf_dpo_loss(t(demo), t(LW), t(LL), t(RW), t(RL), beta=beta, w1=0.0).loss, dpo)
    samp, ref_samp = math.log(0.2) + math.log(0.9), math.log(0.3) + math.log(0.8)
    sp = L.self_play_aihf_loss(t(demo), t(samp), t(ref_demo), t(ref_samp), t(LW), t(LL), t(RW), t(RL),
                               beta=beta, w1=w1)
    spin = math.log(1 + math.exp(-beta * ((demo - ref_demo) - (samp - ref_samp))))
    assert approx(sp.loss, w1 * spin + dpo)  # 004 Eq. (11), negated
    assert approx(sp.metrics["spin"], spin)


# ================================================================ gradchecks (float64)
def _rand(*shape: int, seed: int = 0, grad: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) * -3.0 - 0.2).requires_grad_(grad)


# constant (stop-gradient) inputs: references, old policies, win rates
R1, R2 = _rand(3, seed=5, grad=False), _rand(3, seed=6, grad=False)
WIN = torch.tensor([0.2, 0.5, 0.9])

GRADCHECKS = {
    "dpo": lambda a, b: L.dpo_loss(a, b, R1, R2, beta=0.3).loss,
    "ipo": lambda a, b: L.ipo_loss(a, b, R1, R2, beta=0.3).loss,
    "slic": lambda a, b: L.slic_hf_loss(a, b, delta=10.0, reg_logp=a + b, lam=0.2).loss,
    "spo": lambda a, b: L.spo_loss(a, b, alpha=0.6).loss,
    "spo0": lambda a, b: L.spo_loss(a, b, alpha=0.0).loss,
    "spo_bon": lambda a, b: L.spo_best_of_n_loss(torch.stack([a, b], -1), torch.tensor([1, 0, 1]),
                                                 alpha=0.5).loss,
    "spo_rank": lambda a, b: L.spo_ranked_loss(torch.stack([a, b, a + b], -1), alpha=0.5).loss,
    "sppo": lambda a, b: L.sppo_loss(a + b, R1, WIN, eta=0.5).loss,
    "ompo": lambda a, b: L.ompo_loss(a + b, R1, WIN, beta=0.5, horizon=2).loss,
    "gipo": lambda a, b: L.generalized_ipo_loss(torch.stack([a, b], -1), torch.stack([WIN, 1 - WIN], -1),
                                                base_logp=torch.stack([R1, R2], -1)).loss,
    "gipo_paired": lambda a, b: L.generalized_ipo_loss(a, WIN, base_logp=R2, logp_other=b,
                                                       target_other=1 - WIN, base_logp_other=R1).loss,
    "aihf": lambda a, b: L.self_play_aihf_loss(a, b, R1, R2, b, a, R2, R1, w1=0.3).loss,
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck(name):
    a, b = _rand(3, seed=1), _rand(3, seed=2)
    assert torch.autograd.gradcheck(GRADCHECKS[name], (a, b))


# ================================================================ stop-gradients
def _stopgrad_cases():
    def pair(fn):
        return lambda x, r: fn(x[:2], x[2:4], r[:2], r[2:4])

    return {
        "dpo": pair(lambda w, l_, rw, rl: L.dpo_loss(w, l_, rw, rl, beta=0.3)),
        "ipo": pair(lambda w, l_, rw, rl: L.ipo_loss(w, l_, rw, rl, beta=0.3)),
        "sppo": lambda x, r: L.sppo_loss(x, r, r.exp(), eta=0.5, log_z=r),
        "ompo": lambda x, r: L.ompo_loss(x, r, r.exp(), beta=0.5),
        "mpo_reg": lambda x, r: L.mpo_regression_loss(x, r, r.exp(), beta=0.5),
        "gipo": lambda x, r: L.generalized_ipo_loss(x[None], r.exp()[None], base_logp=r[None] * 2),
        "mpo": lambda x, r: L.mpo_loss(x, r.exp(), alpha=0.3, eta=0.5, magnet_logp=r, old_logp=r * 2,
                                       sample_logp=r * 3),
        "mpo_rt": lambda x, r: L.mpo_rt_loss(x, r.exp(), ref_logp=r, old_logp=r * 2, alpha=0.1, eta=0.5,
                                             greedy_rewards=r),
        "mpo_loo": lambda x, r: L.mpo_loss(x[None], L.preference_advantages(r.exp()[None], "loo"), alpha=0.3,
                                           eta=0.5, magnet_logp=r[None], old_logp=r[None]),
        "aihf_dpo": pair(lambda w, l_, rw, rl: L.aihf_dpo_loss(w, w, l_, rw, rl, w1=0.1)),
        "self_play": pair(lambda w, l_, rw, rl: L.self_play_aihf_loss(w, l_, rw, rl, l_, w, rl, rw, w1=0.1)),
        "kl_full": lambda x, r: L.LossOutput(L.token_kl_full(x.reshape(2, 2), r.reshape(2, 2)).sum()),
        "kl_seq": lambda x, r: L.LossOutput(L.sequence_kl(x, r, r * 2).sum()),
    }


@pytest.mark.parametrize("name", sorted(_stopgrad_cases()))
def test_stop_gradients(name):
    """Gradients never reach reference / old / magnet / base / reward inputs, even when they require grad.

    (SPO's policy-dependent ``mu`` is checked against Eq. (13) in ``test_spo_gradient_is_eq13_...``.)
    """
    x = _rand(4, seed=3)
    r = _rand(4, seed=4)
    loss = _stopgrad_cases()[name](x, r).loss
    gx, gr = torch.autograd.grad(loss, (x, r), allow_unused=True)
    assert gx is not None and gx.abs().sum() > 0
    assert gr is None or torch.all(gr == 0)
