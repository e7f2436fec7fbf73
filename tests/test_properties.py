"""Property-based tests: every generated input either works (and its result is right) or
raises one of prefgym's own errors. Games, preferences, teachers and agents.

Inputs mix valid values with random shapes, dtypes (float, int, bool, complex,
strings), NaN / inf, negative and huge values. Each call goes through
:func:`outcomes.attempt`, which counts the outcome per target and fails the test
on anything but "worked" or "clear error"; ``benchmarks/reliability.py`` prints
the counts. ``PREFGYM_PROPERTY_EXAMPLES`` sets the examples per test (default 100).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from outcomes import attempt

from prefgym.agents import MPO, OMWU, SPO, NashMD
from prefgym.agents.markov import OMPO, MarkovMD
from prefgym.agents.tabular import TabularAgent
from prefgym.games import (
    MatrixGame,
    TabularMarkovGame,
    cyclic,
    planted_nash,
    random_gridworld,
    random_skew_symmetric,
    transitive,
)
from prefgym.preferences import BradleyTerry, Thurstone
from prefgym.teachers import SyntheticTeacher

settings.register_profile(
    "prefgym",
    max_examples=int(os.environ.get("PREFGYM_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    derandomize=True,  # the same examples on every run: deterministic tests
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
settings.load_profile("prefgym")
PROFILE = settings.get_profile("prefgym")


def few(factor: float):
    """Settings with ``factor`` times the profile's examples (slow targets run fewer)."""
    return settings(PROFILE, max_examples=max(3, int(PROFILE.max_examples * factor)))


# ------------------------------------------------------------------ strategies
HUGE = 1e300
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-10, max_value=10),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, 1, -1, 0.5, HUGE, -HUGE, 1e-300, True, False, None, "0.1", "abc", 1 + 1j, [1.0]]),
)
def mostly(valid, weight: int = 3, other=scalars):
    """``valid`` values about ``weight`` times as often as ``other`` (any of :data:`scalars`)."""
    @st.composite
    def pick(draw):
        return draw(valid) if draw(st.integers(0, weight)) > 0 else draw(other)
    return pick()


seeds = mostly(st.one_of(st.none(), st.integers(0, 2**32)), 3,
               st.one_of(st.integers(min_value=-5, max_value=2**130),
                         st.sampled_from([-1, "abc", 1.5, True])))

dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128])


def arrays(max_dims: int = 4, max_side: int = 5, min_dims: int = 0):
    """Arrays of any of ``dtypes`` with NaN, inf, huge and negative entries."""
    def build(dtype):
        if dtype == np.bool_:
            elements = st.booleans()
        elif np.issubdtype(dtype, np.integer):
            elements = st.integers(-(2**40), 2**40)
        elif np.issubdtype(dtype, np.complexfloating):
            elements = st.complex_numbers(max_magnitude=2, allow_nan=False)
        else:
            elements = st.floats(allow_nan=True, allow_infinity=True, width=32 if dtype == np.float32 else 64)
        return hnp.arrays(dtype, hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0,
                                                  max_side=max_side), elements=elements)
    return dtypes.flatmap(build)


def simplex(n: int):
    """A valid probability vector over ``n`` actions."""
    return hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)).map(
        lambda x: x / x.sum() if x.sum() > 0 else np.full(n, 1.0 / n))


def near_policy(n: int):
    """A policy, a perturbed one, or any array: most should be refused, some accepted."""
    return st.one_of(simplex(n), simplex(n).map(lambda p: p * 1.5), simplex(n).map(lambda p: p - 0.1),
                     simplex(n).map(lambda p: np.where(p == p.max(), np.nan, p)), arrays(max_dims=3),
                     st.lists(scalars, max_size=4), scalars)


@st.composite
def preference_matrices(draw):
    """A valid matrix (maybe batched), a perturbed one, or any array."""
    kind = draw(st.sampled_from(["valid", "perturbed", "any"]))
    if kind == "any":
        return draw(st.one_of(arrays(), scalars, st.lists(st.lists(scalars, max_size=3), max_size=3)))
    n = draw(st.integers(1, 6))
    batch = draw(st.sampled_from([(), (2,), (2, 1)]))
    G = draw(hnp.arrays(np.float64, (*batch, n, n), elements=st.floats(-5, 5)))
    P = 1.0 / (1.0 + np.exp(-(G - np.swapaxes(G, -1, -2))))
    if kind == "perturbed":
        idx = tuple(draw(st.integers(0, s - 1)) for s in P.shape)
        P = P.copy()
        P[idx] = draw(st.sampled_from([np.nan, np.inf, -0.1, 1.5, P[idx] + 1e-3, 2.0]))
    return P


# ------------------------------------------------------------------ checks of results
def valid_game(game) -> None:
    assert isinstance(game, MatrixGame)
    P = game.preference
    assert np.isfinite(P).all() and P.min() >= 0 and P.max() <= 1, "preference outside [0, 1]"
    np.testing.assert_allclose(P + np.swapaxes(P, -1, -2), 1.0, atol=1e-6)
    np.testing.assert_allclose(game.payoff, -np.swapaxes(game.payoff, -1, -2), atol=1e-12)


def in_unit_interval(x) -> None:
    x = np.asarray(x)
    assert np.isfinite(x).all() and (x >= -1e-9).all() and (x <= 1 + 1e-9).all(), f"{x} not in [0, 1]"


def valid_policy(pi, axis=-1) -> None:
    pi = np.asarray(pi)
    assert np.isfinite(pi).all() and (pi >= 0).all(), "policy has NaN, inf or negative entries"
    np.testing.assert_allclose(pi.sum(axis=axis), 1.0, atol=1e-6)


# ------------------------------------------------------------------ games and preferences
@given(preference_matrices())
def test_matrix_game_constructor(matrix):
    attempt("MatrixGame(preference)", lambda: MatrixGame(matrix), valid_game, repr(matrix))


@given(st.integers(1, 5), near_policy(3), near_policy(3))
def test_matrix_game_payoffs(seed, pi, rho):
    game = random_skew_symmetric(3, seed=seed)
    attempt("MatrixGame.win_rate", lambda: game.win_rate(pi, rho), in_unit_interval, f"{pi!r}, {rho!r}")

    def expl_ok(e):
        assert np.isfinite(e).all() and (np.asarray(e) >= -1e-9).all(), f"exploitability {e}"
    attempt("MatrixGame.exploitability", lambda: game.exploitability(pi), expl_ok, repr(pi))


@few(0.6)
@given(st.integers(1, 8), st.integers(0, 100))
def test_nash_equilibrium_is_exact(n, seed):
    game = random_skew_symmetric(n, seed=seed)

    def is_nash(pi):
        valid_policy(pi)
        assert game.exploitability(pi) <= 1e-6, "not an equilibrium"
    attempt("MatrixGame.nash_equilibrium", lambda: game.nash_equilibrium(time_limit=10), is_nash)


GENERATORS = {
    "random_skew_symmetric": lambda n, seed, batch, x: random_skew_symmetric(n, seed=seed, batch=batch),
    "transitive": lambda n, seed, batch, x: transitive(n, seed=seed, batch=batch, temperature=x),
    "planted_nash": lambda n, seed, batch, x: planted_nash(n, rank=1, seed=seed, batch=batch),
    "cyclic": lambda n, seed, batch, x: cyclic(n, strength=x),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
@given(n=st.one_of(st.integers(-3, 12), st.sampled_from([10**9, 2.5, "3", None, True])), seed=seeds,
       batch=st.one_of(st.none(), st.integers(-2, 3),
                       st.sampled_from([(2, 0), (2, 2), "x", 1.5, (10**6, 10**6)])),
       x=mostly(st.floats(0.05, 1)))
def test_game_generators(name, n, seed, batch, x):
    attempt(f"games.{name}", lambda: GENERATORS[name](n, seed, batch, x), valid_game,
            f"n={n!r} seed={seed!r} batch={batch!r} x={x!r}")


@given(st.one_of(hnp.arrays(np.float64, st.integers(1, 5), elements=st.floats(-10, 10)), arrays(max_dims=2)),
       mostly(st.floats(0.01, 10)))
def test_bradley_terry_and_thurstone(values, scale):
    attempt("BradleyTerry", lambda: MatrixGame(BradleyTerry(values, temperature=scale)), valid_game,
            f"{values!r} T={scale!r}")
    attempt("Thurstone", lambda: MatrixGame(Thurstone(values, scale=scale)), valid_game,
            f"{values!r} {scale!r}")


@st.composite
def markov_inputs(draw):
    S, A, H = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    f = draw(hnp.arrays(np.float64, (S, A, S), elements=st.floats(0.01, 1)))
    f = f / f.sum(-1, keepdims=True)
    G = draw(hnp.arrays(np.float64, (S * A, S * A), elements=st.floats(-3, 3)))
    r = (1.0 / (1.0 + np.exp(-(G - G.T)))).reshape(S, A, S, A)
    nu = np.zeros(S)
    nu[0] = 1.0
    horizon = H
    for _ in range(draw(st.integers(0, 2))):  # break up to two of the inputs
        which = draw(st.sampled_from(["f", "r", "nu", "H"]))
        bad = draw(st.one_of(arrays(max_dims=5, max_side=3), scalars))
        f, r, nu, horizon = (bad if which == "f" else f, bad if which == "r" else r,
                             bad if which == "nu" else nu, bad if which == "H" else horizon)
    return f, r, nu, horizon


@given(markov_inputs())
def test_tabular_markov_game_constructor(inputs):
    f, r, nu, H = inputs

    def ok(game):
        pi = game.uniform_policy()
        assert abs(float(game.value(pi, pi)) - game.horizon / 2) < 1e-9, "V(pi, pi) != H/2"
        assert float(game.exploitability(pi)) >= -1e-9
    attempt("TabularMarkovGame", lambda: TabularMarkovGame(f, r, nu, H), ok, repr(inputs)[:300])


@given(seed=seeds, n_states=mostly(st.one_of(st.none(), st.integers(1, 6)), 6),
       n_actions=mostly(st.one_of(st.none(), st.integers(1, 4)), 6),
       horizon=mostly(st.integers(-1, 4), 6), slip=mostly(st.floats(0, 1), 6))
def test_random_gridworld(seed, n_states, n_actions, horizon, slip):
    def ok(game):
        assert isinstance(game, TabularMarkovGame)
        assert np.isfinite(game.transitions).all()
        np.testing.assert_allclose(game.transitions.sum(-1), 1.0, atol=1e-9)
    attempt("games.random_gridworld",
            lambda: random_gridworld(seed=seed, n_states=n_states, n_actions=n_actions, horizon=horizon,
                                     slip=slip),
            ok, f"{seed!r} {n_states!r} {n_actions!r} {horizon!r} {slip!r}")


# ------------------------------------------------------------------ teachers
@given(temperature=mostly(st.floats(0, 10)), gamma=mostly(st.floats(0.01, 1)), eps=mostly(st.floats(0, 1)),
       a=st.one_of(hnp.arrays(np.float64, (2, 3), elements=st.floats(-5, 5)), arrays(max_dims=2)),
       b=st.one_of(hnp.arrays(np.float64, (2, 3), elements=st.floats(-5, 5)), arrays(max_dims=2)))
def test_synthetic_teacher(temperature, gamma, eps, a, b):
    teacher = attempt("SyntheticTeacher", lambda: SyntheticTeacher(temperature=temperature, gamma=gamma,
                                                                 eps_mistake=eps),
                      describe=f"{temperature!r} {gamma!r} {eps!r}")
    if teacher is None:
        return

    def labels_ok(y):
        y = np.asarray(y)
        assert np.isin(y[~np.isnan(y)], (0.0, 0.5, 1.0)).all(), f"labels {y}"
    attempt("SyntheticTeacher.label", lambda: teacher.label(a, b, np.random.default_rng(0)), labels_ok,
            f"{a!r} {b!r}")

    def probs_ok(p):
        p = np.asarray(p)
        in_unit_interval(p[~np.isnan(p)])
    attempt("SyntheticTeacher.prob", lambda: teacher.prob(a, b), probs_ok, f"{a!r} {b!r}")


# ------------------------------------------------------------------ agents
TABULAR = {"omwu": OMWU, "mpo": MPO, "nash_md": NashMD, "spo": SPO}


def _policies_equal(a, b) -> None:
    np.testing.assert_array_equal(a.policy, b.policy)
    assert a.num_iterations == b.num_iterations


@few(0.6)
@pytest.mark.parametrize("name", sorted(TABULAR))
@given(lr=mostly(st.floats(0.001, 10)), seed=seeds,
       init=mostly(st.one_of(st.none(), simplex(3).map(lambda p: 0.9 * p + 0.1 / 3)), 3, near_policy(3)),
       iters=st.integers(0, 4))
def test_tabular_agents_learn_save_load(name, lr, seed, init, iters, tmp_path_factory):
    cls = TABULAR[name]
    game = random_skew_symmetric(3, seed=0)
    agent = attempt(f"agents.{name}(...)", lambda: cls(game, learning_rate=lr, init_policy=init, seed=seed),
                    describe=f"lr={lr!r} seed={seed!r} init={init!r}")
    if agent is None:
        return

    def learned(a: TabularAgent):
        valid_policy(a.policy)
        valid_policy(a.average_policy)
        assert np.isfinite(a.history["last_gap"]).all(), "NaN duality gap"
    attempt(f"agents.{name}.learn", lambda: agent.learn(iters), learned, f"lr={lr!r}")
    path = tmp_path_factory.mktemp("agent") / "agent.zip"
    agent.save(path)

    def round_trip(loaded):
        _policies_equal(agent, loaded)
        agent.learn(1)
        loaded.learn(1)
        _policies_equal(agent, loaded)  # training continues identically
    attempt(f"agents.{name}.save/load", lambda: cls.load(path), round_trip)


@few(0.4)
@pytest.mark.parametrize("cls", [OMPO, MarkovMD], ids=["ompo", "md_markov"])
@given(lr=mostly(st.floats(0.001, 10)), seed=seeds, n_samples=mostly(st.integers(1, 3)),
       iters=st.integers(0, 3))
def test_markov_agents_learn_save_load(cls, lr, seed, n_samples, iters, tmp_path_factory):
    game = random_gridworld(seed=0, n_states=4, n_actions=2, horizon=2)
    agent = attempt(f"agents.{cls.name}(...)",
                    lambda: cls(game, learning_rate=lr, seed=seed, n_samples=n_samples),
                    describe=f"lr={lr!r} seed={seed!r} n_samples={n_samples!r}")
    if agent is None:
        return

    def learned(a):
        valid_policy(a.policy)
        assert np.isfinite(a.history["exploitability"]).all()
    attempt(f"agents.{cls.name}.learn", lambda: agent.learn(iters), learned, f"lr={lr!r}")
    path = tmp_path_factory.mktemp("agent") / "agent.zip"
    agent.save(path)
    attempt(f"agents.{cls.name}.save/load", lambda: cls.load(path), lambda b: _policies_equal(agent, b))
