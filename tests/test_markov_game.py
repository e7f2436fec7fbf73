"""TabularMarkovGame against brute force, Monte Carlo and the matrix game it extends."""

import itertools

import numpy as np
import pytest

from prefgym.games import random_skew_symmetric
from prefgym.games.gridworld import random_gridworld
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.step_preference import DenseStepPreference, FeatureStepPreference


def tiny_game(seed, S=3, A=2, H=3, two_starts=True, per_step=False):
    rng = np.random.default_rng(seed)
    f = rng.dirichlet(np.ones(S), size=(H - 1, S, A))
    M = rng.random((H, S * A, S * A)) if per_step else rng.random((S * A, S * A))
    r = 0.5 + 0.5 * (M - np.swapaxes(M, -1, -2))
    r = r.reshape((H, S, A, S, A) if per_step else (S, A, S, A))
    nu = np.array([0.4, 0.6, 0.0]) if two_starts else np.array([1.0, 0.0, 0.0])
    return TabularMarkovGame(f, r, nu, H)


def joint_value(game, pi, pi2):
    """<nu_1, V^{pi, pi2}> by the pairwise Bellman recursion on joint states (001 Lemma 2)."""
    r = game.preference.dense(game.horizon)
    total = 0.0
    for k, s1 in enumerate(game.initial_states):
        V = np.zeros((game.n_states, game.n_states))
        for h in range(game.horizon - 1, -1, -1):
            Q = r[h].copy()
            if h + 1 < game.horizon:
                f = game.step_transitions(h)
                Q += np.einsum("sat,ubv,tv->saub", f, f, V)
            V = np.einsum("sa,ub,saub->su", pi[k, h], pi2[k, h], Q)
        total += game.initial_weights[k] * V[s1, s1]
    return total


def deterministic_policies(game):
    K, H, S, A = game.policy_shape
    for acts in itertools.product(range(A), repeat=K * H * S):
        yield np.eye(A)[np.array(acts).reshape(K, H, S)]


@pytest.mark.parametrize(("seed", "per_step", "two_starts", "H"),
                         [(0, False, True, 2), (1, True, False, 3), (2, False, False, 3)])
def test_values_and_exploitability_match_brute_force(seed, per_step, two_starts, H):
    game = tiny_game(seed, H=H, two_starts=two_starts, per_step=per_step)
    rng = np.random.default_rng(seed)
    pi, rho = (rng.dirichlet(np.ones(2), size=game.policy_shape[:-1]) for _ in range(2))
    assert game.value(pi, rho) == pytest.approx(joint_value(game, pi, rho), abs=1e-12)
    # best response by enumerating every deterministic policy (2^(K H S) of them)
    best = max(joint_value(game, det, rho) for det in deterministic_policies(game))
    assert game.exploitability(rho) == pytest.approx(best - game.horizon / 2, abs=1e-9)
    br, per_start = game.best_response(rho)
    assert game.value(br, rho) == pytest.approx(best, abs=1e-9)
    assert per_start.shape == (game.n_initial,)


def test_constant_sum_identities():
    game = tiny_game(3)
    rng = np.random.default_rng(3)
    pi, rho = (rng.dirichlet(np.ones(2), size=game.policy_shape[:-1]) for _ in range(2))
    H = game.horizon
    assert game.value(pi, pi) == pytest.approx(H / 2, abs=1e-12)  # "the constant sum is H"
    assert game.value(pi, rho) + game.value(rho, pi) == pytest.approx(H, abs=1e-12)
    assert game.duality_gap(pi) == pytest.approx(2 * game.exploitability(pi), abs=1e-12)
    assert game.exploitability(pi) >= 0


def test_monte_carlo_rollouts_agree_within_three_standard_errors():
    game = tiny_game(4)
    rng = np.random.default_rng(4)
    pi, rho = (rng.dirichlet(np.ones(2), size=game.policy_shape[:-1]) for _ in range(2))
    n = 20_000
    k, s, a = game.sample_trajectories(pi, n, rng)
    _, s2, a2 = game.sample_trajectories(rho, n, rng, starts=k)  # shared start S'_1 = S_1
    h = np.arange(game.horizon)
    returns = game.preference.prob(h, s, a, s2, a2).sum(axis=1)
    se = returns.std() / np.sqrt(n)
    assert abs(returns.mean() - game.value(pi, rho)) < 3 * se


def test_horizon_one_is_the_matrix_game():
    mg = random_skew_symmetric(6, seed=2)
    mk = TabularMarkovGame.from_matrix_game(mg)
    pis = np.random.default_rng(2).dirichlet(np.ones(6), size=5)
    for pi in pis:
        assert mk.exploitability(pi.reshape(1, 1, 6)) == pytest.approx(mg.exploitability(pi), abs=1e-14)
        assert mk.value(pi.reshape(1, 1, 6), pis[0].reshape(1, 1, 6)) == pytest.approx(
            mg.win_rate(pi, pis[0]), abs=1e-14)


def test_feature_preference_equals_its_dense_tensor():
    rng = np.random.default_rng(5)
    S, A, H, k = 4, 3, 3, 5
    phi = rng.random((S, A, k))
    om = rng.standard_normal((k, k))
    om = om - om.T
    om *= 0.5 / np.abs(np.einsum("sai,ij,tbj->satb", phi, om, phi)).max()
    fp = FeatureStepPreference(phi, om)
    f = rng.dirichlet(np.ones(S), size=(S, A))
    nu = np.eye(S)[0]
    g1, g2 = TabularMarkovGame(f, fp, nu, H), TabularMarkovGame(f, fp.dense(H), nu, H)
    pi = rng.dirichlet(np.ones(A), size=g1.policy_shape[:-1])
    assert g1.exploitability(pi) == pytest.approx(g2.exploitability(pi), abs=1e-12)
    assert np.allclose(fp.prob(0, 1, 2, 3, 0), fp.dense(H)[0, 1, 2, 3, 0])


def test_soft_q_tends_to_hard_q_and_satisfies_theorem7_sandwich():
    game = tiny_game(6)
    rng = np.random.default_rng(6)
    pi = rng.dirichlet(np.ones(2), size=game.policy_shape[:-1])
    reward = game.stage_payoff(game.occupancy(pi))
    Qh, Vh = game.q_values(pi, reward)
    Qs, Vs = game.q_values(pi, reward, soft_beta=1e-6)
    assert np.allclose(Qh, Qs, atol=1e-5) and np.allclose(Vh, Vs, atol=1e-5)
    _, Vb = game.q_values(pi, reward, soft_beta=0.5)
    assert np.all(Vb >= Vh - 1e-12)  # the soft value dominates the hard one


def test_random_gridworld_follows_001():
    for seed in range(5):
        game = random_gridworld(seed)
        assert 1 <= game.n_states <= 100 and 2 <= game.n_actions <= 10
        assert np.allclose(game.transitions.sum(-1), 1)
        assert game.exploitability(game.uniform_policy()) > 0


def test_bad_game_tensors_raise_clear_errors():
    f = np.full((2, 2, 2), 0.5)
    r = np.full((2, 2, 2, 2), 0.5)
    nu = np.array([1.0, 0.0])
    bad_f = f.copy()
    bad_f[1, 0] = [0.7, 0.7]
    with pytest.raises(ValueError, match=r"row f\[0, 1, 0, :\] sums to 1.4"):
        TabularMarkovGame(bad_f, r, nu, 2)
    bad_r = r.copy()
    bad_r[0, 1, 1, 0] = 0.9
    with pytest.raises(ValueError, match=r"not antisymmetric: r\[0, 0, 1, 1, 0\]"):
        TabularMarkovGame(f, bad_r, nu, 2)
    bad_r[0, 1, 1, 0], bad_r[1, 0, 0, 1] = 1.3, -0.3
    with pytest.raises(ValueError, match="outside"):
        DenseStepPreference(bad_r)
    with pytest.raises(ValueError, match="initial_distribution"):
        TabularMarkovGame(f, r, [0.5, 0.6], 2)
    with pytest.raises(ValueError, match="horizon"):
        TabularMarkovGame(f, r, nu, 0)
    with pytest.raises(ValueError, match="3 steps; the game has 2"):
        TabularMarkovGame(f, np.stack([r] * 3), nu, 2)
    with pytest.raises(ValueError, match="skew"):
        FeatureStepPreference(np.ones((2, 2, 2)), np.eye(2))
    with pytest.raises(ValueError, match="leaves"):
        FeatureStepPreference(np.repeat(np.eye(2)[:, None], 2, axis=1), np.array([[0.0, 3.0], [-3.0, 0.0]]))
    game = TabularMarkovGame(f, r, nu, 2)
    with pytest.raises(ValueError, match="sums to"):
        game.exploitability(np.full((2, 2, 2), 0.3))
