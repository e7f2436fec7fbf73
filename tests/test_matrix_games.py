import numpy as np
import pytest
from scipy.optimize import linprog

from prefgym.games import MatrixGame, cyclic, planted_nash, random_skew_symmetric, rps, transitive
from prefgym.games.matrix import make_game


def lp_best_response_value(A, pi):
    """max_{pi'} pi'^T A pi by an LP, independent of our closed form."""
    n = len(pi)
    res = linprog(-(A @ pi), A_eq=np.ones((1, n)), b_eq=[1.0], bounds=[(0, None)] * n, method="highs")
    return -res.fun


def test_rps_nash_is_uniform_with_zero_gap():
    game = rps()
    assert np.allclose(game.nash_equilibrium(), 1 / 3, atol=1e-9)
    assert game.duality_gap(np.ones(3) / 3) == pytest.approx(0.0, abs=1e-15)
    assert game.duality_gap(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)  # paper beats rock surely
    assert np.allclose(game.payoff, -game.payoff.T)


def test_transitive_nash_is_condorcet_winner():
    for seed in range(5):
        game = transitive(6, seed=seed)
        winner = np.argmax(game.preference_model.rewards)
        ne = game.nash_equilibrium()
        assert ne[winner] == pytest.approx(1.0, abs=1e-9)
        assert game.duality_gap(ne) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_exploitability_agrees_with_lp_on_random_games(seed):
    game = random_skew_symmetric(8, seed=seed)
    rng = np.random.default_rng(seed)
    for pi in rng.dirichlet(np.ones(8), size=5):
        assert game.exploitability(pi) == pytest.approx(lp_best_response_value(game.payoff, pi), abs=1e-6)
        # duality gap of the symmetric profile = twice the exploitability
        assert game.duality_gap(pi) == pytest.approx(2 * game.exploitability(pi), abs=1e-12)
    ne = game.nash_equilibrium()
    assert game.exploitability(ne) < 1e-6 and lp_best_response_value(game.payoff, ne) < 1e-6


def test_batched_game_matches_single_games():
    games = random_skew_symmetric(5, seed=3, batch=4)
    pis = np.random.default_rng(0).dirichlet(np.ones(5), size=4)
    gaps = games.duality_gap(pis)
    assert gaps.shape == (4,)
    for i in range(4):
        assert gaps[i] == pytest.approx(games[i].duality_gap(pis[i]), abs=1e-14)
    ne = games.nash_equilibrium()
    assert np.all(games.duality_gap(ne) < 1e-8)
    assert MatrixGame.stack([games[0], games[1]]).batch_shape == (2,)


def test_planted_nash_generator_of_002():
    for n, r in [(10, 1), (10, 3), (30, 3)]:
        game, planted = planted_nash(n, r, seed=1, return_planted=True)
        A = game.payoff
        assert np.allclose(A, -A.T) and np.abs(A).max() == pytest.approx(0.5)
        assert np.abs(game.payoff_vector(planted)).max() < 1e-12  # every planted policy is an NE
        assert np.all(planted > 0)  # full support: Assumption 1 holds
        assert np.linalg.matrix_rank(A) in (n - r, n - r - 1)
    with pytest.raises(ValueError, match="rank"):
        planted_nash(4, rank=4)


def test_regularized_gap_is_zero_at_regularized_nash_and_tends_to_gap():
    game = random_skew_symmetric(6, seed=0)
    ref = np.ones(6) / 6
    tau = 0.3
    pi = ref.copy()
    for _ in range(5000):  # damped fixed point of pi ~ ref exp(A pi / tau)
        z = ref * np.exp(game.payoff_vector(pi) / tau)
        pi = 0.5 * pi + 0.5 * z / z.sum()
    assert game.regularized_duality_gap(pi, tau, ref) == pytest.approx(0.0, abs=1e-10)
    x = np.random.default_rng(1).dirichlet(np.ones(6))
    assert game.regularized_duality_gap(x, tau, ref) > 0
    assert game.regularized_duality_gap(x, 1e-5, ref) == pytest.approx(game.duality_gap(x), abs=1e-3)


def test_generators_by_name_and_errors():
    assert make_game("cyclic", n=5).n_actions == 5
    assert cyclic(4).nash_equilibrium().shape == (4,)
    with pytest.raises(ValueError, match="unknown game generator"):
        make_game("nope")
    with pytest.raises(ValueError, match="square"):
        MatrixGame(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="last dimension 3"):
        rps().check_policy(np.ones(4) / 4)


def test_symmetric_gap_shortcut_equals_the_two_sided_gap():
    game = random_skew_symmetric(7, seed=3, batch=4)
    pi = np.random.default_rng(1).dirichlet(np.ones(7), size=4)
    two_sided = game.exploitability(pi) + game.exploitability(pi.copy())
    np.testing.assert_array_equal(game.duality_gap(pi), two_sided)  # rho omitted
    np.testing.assert_array_equal(game.duality_gap(pi, pi), two_sided)  # the same array
    np.testing.assert_array_equal(game.duality_gap(pi, pi.copy()), two_sided)  # an equal copy


def test_numpy_logsumexp_matches_scipy():
    from scipy.special import logsumexp

    from prefgym.simplex import logsumexp_last

    x = np.random.default_rng(0).normal(scale=300.0, size=(5, 9))  # large: needs the shift
    np.testing.assert_allclose(logsumexp_last(x), logsumexp(x, axis=-1), rtol=1e-13, atol=0)
    x[0, :3] = -np.inf
    x[1, :] = -np.inf
    np.testing.assert_allclose(logsumexp_last(x), logsumexp(x, axis=-1), rtol=1e-13, atol=0)
    assert logsumexp_last(x)[1] == -np.inf


def test_regularized_gap_matches_the_closed_form_with_scipy():
    from scipy.special import logsumexp

    from prefgym.simplex import kl

    game = random_skew_symmetric(6, seed=2)
    pi = np.random.default_rng(4).dirichlet(np.ones(6))
    ref = np.random.default_rng(5).dirichlet(np.ones(6))
    tau = 0.05
    g = game.payoff_vector(pi)
    want = 2 * tau * (logsumexp(np.log(ref) + g / tau) + kl(pi, ref))  # 002 Sec. 3.2
    np.testing.assert_allclose(game.regularized_duality_gap(pi, tau, ref), want, rtol=1e-12)
