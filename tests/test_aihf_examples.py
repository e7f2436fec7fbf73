"""004's exact results: Example 1 (56/110), Example 2 (Fig. 9), Lemma 4.1, Alg. 1 (Thm 4.1), estimator."""

import json

import numpy as np
import pytest

from prefgym.agents.tabular.aihf import (
    KLRegularizedMDP,
    aihf_static_policy,
    btl_fixed_point,
    demo_log_likelihood,
    fit_static_by_optimiser,
    lemma41_gradient,
    preference_policy,
    random_aihf_problem,
    rlhf_policy,
    run_algorithm1,
    sft_policy,
)
from prefgym.errors import InvalidArgumentError
from prefgym.reproductions.aihf_examples import EXAMPLE1, example2

torch = pytest.importorskip("torch")

from prefgym.agents.aihf_estimator import TabularReward, aihf_loss, paper_weights  # noqa: E402

TARGET = 56 / 110
EXPECTED = {"a": {"sft": 0.5, "pref": 0.6, "rlhf": 0.6}, "b": {"sft": 0.6, "pref": 0.5, "rlhf": 0.6}}


@pytest.mark.parametrize("variant", ["a", "b"])
def test_example1_closed_forms(variant):
    d, w = EXAMPLE1[variant]["demo_counts"], EXAMPLE1[variant]["pref_wins"]
    assert sft_policy(d)[0] == pytest.approx(EXPECTED[variant]["sft"], abs=1e-12)
    assert preference_policy(w)[0] == pytest.approx(EXPECTED[variant]["pref"], abs=1e-12)
    assert rlhf_policy(d, w)[0] == pytest.approx(0.6, abs=1e-12)  # Eq. 33
    assert aihf_static_policy(d, w)[0] == pytest.approx(TARGET, abs=1e-12)  # Eq. 36


@pytest.mark.parametrize("variant", ["a", "b"])
def test_aihf_loss_defaults_and_adam_reproduce_56_over_110(variant):
    """The estimator the SAC agent uses, with its default (Eq. 34) weights and its Adam optimiser."""
    d, w = EXAMPLE1[variant]["demo_counts"], EXAMPLE1[variant]["pref_wins"]
    pi, trace = fit_static_by_optimiser(d, w, steps=3000, lr=0.05, tol=1e-12)
    assert pi[0] == pytest.approx(TARGET, abs=1e-6)
    assert trace[-1] < trace[0]
    # the pre-004 estimator (weights 1 and 1 on means) lands elsewhere: (0.5 + 0.6) / 2 = 0.55
    net = TabularReward(1, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    eye, one = torch.eye(2, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    demo = (one.expand(sum(d), 1), eye[np.repeat([0, 1], d)])
    win = np.repeat([0, 1], [w[0][1], w[1][0]])
    m = len(win)
    prefs = {"obs_a": one.expand(m, 1, 1)[:, :, :1], "act_a": eye[win][:, None], "w_a": torch.ones(m, 1),
             "obs_b": one.expand(m, 1, 1)[:, :, :1], "act_b": eye[1 - win][:, None], "w_b": torch.ones(m, 1),
             "y": torch.ones(m)}
    for _ in range(600):
        with torch.no_grad():
            p = torch.softmax(net.theta[0], -1)
        loss, stats = aihf_loss(net, demo, (one, p[None]), prefs, 1.0, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.softmax(net.theta[0], -1)[0].item() == pytest.approx(0.55, abs=1e-5)


def test_aihf_loss_default_weights_temperature_and_horizon():
    net = TabularReward(1, 2)
    with torch.no_grad():
        net.theta[:] = torch.tensor([[0.3, -0.1]], dtype=torch.float64)
    one, eye = torch.ones(1, 1, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    demo, agent = (one, eye[:1]), (one, torch.tensor([[0.25, 0.75]], dtype=torch.float64))
    prefs = {"obs_a": one[None], "act_a": eye[:1][None], "w_a": torch.ones(1, 1), "obs_b": one[None],
             "act_b": eye[1:][None], "w_b": torch.ones(1, 1), "y": torch.ones(1)}
    beta, H = 0.2, 3.0
    loss, stats = aihf_loss(net, demo, agent, prefs, n_demo=30, n_pref=10, temperature=beta, horizon=H)
    wd, wp = paper_weights(30, 10)
    assert (wd, wp) == (0.75, 0.25) and stats["w_demo"] == 0.75
    r_agent = 0.25 * 0.3 + 0.75 * -0.1
    demo_term = H / beta * (r_agent - 0.3)  # Eq. 18 with 1 / beta on a segment of H steps
    pref_term = np.log1p(np.exp(-0.4 / beta))  # -log sig(dR / beta)
    assert loss.item() == pytest.approx(wd * demo_term + wp * pref_term, rel=1e-12)
    with pytest.raises(InvalidArgumentError, match="n_demo and n_pref"):
        aihf_loss(net, demo, agent, prefs)
    alone, s = aihf_loss(net, None, None, prefs, temperature=beta)  # a term alone has weight 1
    assert s["w_pref"] == 1.0 and alone.item() == pytest.approx(pref_term)
    with pytest.raises(InvalidArgumentError, match="temperature"):
        aihf_loss(net, None, None, prefs, temperature=0.0)


def test_fixed_point_is_the_maximiser_of_eq34():
    rng = np.random.default_rng(3)
    d = rng.integers(0, 20, size=5).astype(float)
    w = rng.integers(0, 8, size=(5, 5)).astype(float)
    np.fill_diagonal(w, 0)
    pi = btl_fixed_point(d, w)
    n = w + w.T
    grad = d - pi * d.sum() + w.sum(1) - (pi[:, None] / (pi[:, None] + pi[None, :]) * n).sum(1)  # Eq. 35
    assert np.abs(grad).max() < 1e-9 and pi.sum() == pytest.approx(1.0)


def test_example2_figure9_mass_on_never_demonstrated_actions():
    ex = example2(n_repeats=5)
    m = ex["mass_on_never_demonstrated"]
    assert m["sft"]["max"] == 0.0 and m["rlhf"]["max"] == 0.0  # Eq. 33: RLHF inherits SFT's zeros
    assert m["aihf"]["mean"] == pytest.approx(ex["truth_mass_on_never_demonstrated"], rel=0.1)
    assert ex["l1_to_truth"]["aihf"]["mean"] < 0.5 * ex["l1_to_truth"]["rlhf"]["mean"]
    again = example2(n_repeats=5)
    assert np.array_equal(again["mean_policy"]["aihf"], ex["mean_policy"]["aihf"])  # same seeds, same numbers


def test_soft_evaluation_improvement_and_occupancy_are_exact():
    prob = random_aihf_problem(n_pref=20, seed=1)
    mdp = prob.mdp
    r = prob.features @ prob.theta_true
    pi = np.random.default_rng(0).dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)
    q = mdp.soft_evaluate(r, pi)
    v = (pi * (q - mdp.beta * np.log(pi / mdp.ref))).sum(-1)
    assert np.allclose(q, r + mdp.gamma * mdp.P @ v, atol=1e-12)  # Eq. 88
    star, q_star = mdp.soft_optimal(r)
    v_star = mdp.beta * np.log((mdp.ref * np.exp(q_star / mdp.beta)).sum(-1))  # Eq. 44
    assert np.allclose(q_star, r + mdp.gamma * mdp.P @ v_star, atol=1e-10)
    assert np.allclose(star, prob.expert)
    assert mdp.occupancy(pi).sum() == pytest.approx(1 / (1 - mdp.gamma))
    with pytest.raises(InvalidArgumentError, match="transitions"):
        KLRegularizedMDP(np.ones((2, 2, 2)), [0.5, 0.5], 0.9)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_lemma41_gradient_matches_finite_differences(beta):
    prob = random_aihf_problem(n_pref=20, beta=beta, seed=2)
    theta = np.random.default_rng(5).normal(size=prob.features.shape[-1])
    g = lemma41_gradient(prob.mdp, prob.features, theta, prob.expert_occupancy)
    h = 1e-5
    fd = [(demo_log_likelihood(prob.mdp, prob.features, theta + h * e, prob.expert_occupancy)
           - demo_log_likelihood(prob.mdp, prob.features, theta - h * e, prob.expert_occupancy)) / (2 * h)
          for e in np.eye(len(theta))]
    assert np.abs(g - fd).max() < 1e-6
    # and the full gradient of Eq. 34's objective
    fd_all = [(prob.objective(theta + h * e) - prob.objective(theta - h * e)) / (2 * h)
              for e in np.eye(len(theta))]
    assert np.abs(prob.gradient(theta) - fd_all).max() < 1e-6


def test_algorithm1_gap_shrinks_with_K_and_reruns_bit_identically():
    prob = random_aihf_problem(seed=0)
    runs = [run_algorithm1(prob, K, alpha0=1.0, batch=16, seed=0) for K in (10, 40, 160)]
    assert runs[0].policy_gap > runs[1].policy_gap > runs[2].policy_gap
    assert runs[0].grad_norm_sq > runs[1].grad_norm_sq > runs[2].grad_norm_sq
    assert runs[2].grad_norm_sq < runs[0].grad_norm_sq * (10 / 160) ** 0.4
    assert runs[2].objective > prob.objective(np.zeros_like(prob.theta_true))
    again = run_algorithm1(random_aihf_problem(seed=0), 160, alpha0=1.0, batch=16, seed=0)
    assert again.grad_norm_sq == runs[2].grad_norm_sq and np.array_equal(again.theta, runs[2].theta)


def test_cli_reproduce_aihf_examples_quick(tmp_path, capsys):
    from prefgym.cli import main

    assert main(["reproduce", "aihf-examples", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0.509090909" in out and "did not hold" not in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all(v.startswith("held") for v in summary["verdicts"].values())
    assert (tmp_path / "aihf_examples_fig9.png").stat().st_size > 0
    assert (tmp_path / "aihf_examples_theorem41.png").stat().st_size > 0
