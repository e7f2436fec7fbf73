"""Hand-made gridworlds: cyclic goal colours and intermediate-only preferences."""

from __future__ import annotations

import numpy as np
import pytest

from prefgym.games import (
    GRIDWORLD_GENERATORS,
    cyclic_goals_gridworld,
    intermediate_preference_gridworld,
    make_gridworld,
)
from prefgym.games.gridworld import GridLayout, random_gridworld
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.step_preference import FeatureStepPreference

STAY, UP, DOWN, LEFT, RIGHT = range(5)


def open_loop(game: TabularMarkovGame, actions) -> np.ndarray:
    """The policy ``(H, S, A)`` playing ``actions[h]`` in every state at step ``h`` (then stay)."""
    seq = np.full(game.horizon, STAY)
    seq[: len(actions)] = actions
    return np.broadcast_to(np.eye(game.n_actions)[seq][:, None, :], game.policy_shape[1:]).copy()


def walk(game: TabularMarkovGame, policy: np.ndarray) -> np.ndarray:
    """The states of a deterministic policy in a deterministic game, ``(H,)``."""
    _, states, _ = game.sample_trajectories(policy, 1, np.random.default_rng(0))
    return states[0]


# ------------------------------------------------------------ cyclic goals
def test_cyclic_goals_layout_labels_and_preference():
    g = cyclic_goals_gridworld(cycle=0.4, goal_bonus=0.3)
    assert isinstance(g, TabularMarkovGame) and isinstance(g.preference, FeatureStepPreference)
    assert g.layout == GridLayout(25, 5) and (g.n_states, g.n_actions, g.horizon) == (25, 5, 8)
    assert g.start_cell == 12 and g.initial_distribution[12] == 1.0
    assert g.goal_cells == {"R": 2, "G": 10, "B": 14}  # up, left, right of the centre, 2 moves away
    assert g.cell_labels == {12: "S", 2: "R", 10: "G", 14: "B"}
    R, G, B, none = 2, 10, 14, 0
    p = g.preference.prob
    for a, a2 in [(0, 0), (1, 4), (3, 2)]:  # actions do not matter, only cells
        assert p(0, R, a, G, a2) == pytest.approx(0.9) and p(0, G, a, B, a2) == pytest.approx(0.9)
        assert p(0, B, a, R, a2) == pytest.approx(0.9) and p(0, G, a, R, a2) == pytest.approx(0.1)
        for goal in (R, G, B):
            assert p(5, goal, a, none, a2) == pytest.approx(0.8)
        assert p(3, none, a, 24, a2) == 0.5 and p(3, R, a, R, a2) == 0.5
    dense = g.preference.dense(g.horizon)
    assert dense.min() >= 0 and dense.max() <= 1
    # deterministic moves: up from the start twice reaches R
    assert walk(g, open_loop(g, [UP, UP])).tolist() == [12, 7, 2, 2, 2, 2, 2, 2]


def test_no_pure_goal_policy_is_an_equilibrium_but_the_uniform_goal_mixture_is():
    g = cyclic_goals_gridworld()
    H, d = g.horizon, 2
    routes = {"R": [UP, UP], "G": [LEFT, LEFT], "B": [RIGHT, RIGHT]}
    beaten_by = {"R": "B", "G": "R", "B": "G"}
    for goal, moves in routes.items():
        pure = open_loop(g, moves)
        assert walk(g, pure)[d:].tolist() == [g.goal_cells[goal]] * (H - d)
        # the goal that beats it scores 1/2 + cycle at every step from d on
        assert g.exploitability(pure) == pytest.approx((H - d) * 0.4)
        br, _ = g.best_response(pure)
        assert walk(g, br[0])[-1] == g.goal_cells[beaten_by[goal]]
    # mix the three directions at the first step, then keep walking: an exact Nash equilibrium
    mix = open_loop(g, [STAY])
    mix[0, g.start_cell] = [0, 1 / 3, 0, 1 / 3, 1 / 3]
    for moves in routes.values():
        first = walk(g, open_loop(g, moves))[1]
        mix[1, first] = np.eye(5)[moves[1]]
    assert abs(g.exploitability(mix)) < 1e-12
    assert g.value(mix, open_loop(g, routes["R"])) == pytest.approx(H / 2)  # every goal ties the mixture
    assert g.exploitability(g.uniform_policy()) > 0.5


def test_cyclic_goals_variants():
    corner = cyclic_goals_gridworld(start="corner")
    assert corner.start_cell == 0 and corner.goal_cells == {"R": 4, "G": 20, "B": 12}  # all 4 moves away
    slippery = cyclic_goals_gridworld(slip=0.2, horizon=6)
    np.testing.assert_allclose(slippery.transitions.sum(-1), 1.0)
    assert slippery.transitions[0, 12, UP, 7] == pytest.approx(0.8 + 0.2 / 5)
    assert slippery.exploitability(open_loop(slippery, [UP, UP])) > 0.5
    goals = {"R": (0, 0), "G": (0, 3), "B": (2, 3)}
    custom = cyclic_goals_gridworld(4, 3, horizon=6, start=(2, 0), goals=goals)
    assert custom.layout == GridLayout(12, 4) and custom.goal_cells == {"R": 0, "G": 3, "B": 11}
    small = cyclic_goals_gridworld(3, 3, horizon=2)
    assert small.goal_cells == {"R": 1, "G": 3, "B": 5}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"width": 2}, "at least 3 x 3"), ({"height": 0}, "height must be an integer >= 1"),
     ({"width": 4.5}, "width must be an integer"), ({"horizon": 2}, "horizon 2 is too short.*>= 3"),
     ({"cycle": 0.6}, r"cycle must lie in \(0, 0.5\]"), ({"cycle": 0.0}, "cycle must lie in"),
     ({"goal_bonus": -0.1}, r"goal_bonus must lie in \[0, 0.5\]"), ({"slip": 1.5}, "slip"),
     ({"start": "middle"}, "start must be"), ({"start": (5, 0)}, "outside the 5 x 5 grid"),
     ({"goals": {"R": (0, 0), "G": (0, 1)}}, "keys 'R', 'G', 'B'"),
     ({"goals": {"R": (0, 0), "G": (0, 0), "B": (4, 4)}}, "four different cells"),
     ({"goals": {"R": (2, 2), "G": (0, 0), "B": (4, 4)}}, "four different cells"),
     ({"goals": {"R": "a", "G": (0, 0), "B": (4, 4)}}, r"goal R must be a \(row, col\) pair")],
)
def test_cyclic_goals_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cyclic_goals_gridworld(**kwargs)


# ------------------------------------------------------ intermediate preferences
def routes(game: TabularMarkovGame, length: int) -> tuple[np.ndarray, np.ndarray]:
    good = open_loop(game, [UP] + [RIGHT] * (length - 1) + [DOWN])
    bad = open_loop(game, [DOWN] + [RIGHT] * (length - 1) + [UP])
    return good, bad


def test_intermediate_layout_walls_and_routes():
    g = intermediate_preference_gridworld(length=5)
    assert g.layout == GridLayout(15, 5) and g.horizon == 7 and (g.start_cell, g.end_cell) == (5, 9)
    labels = np.array([g.cell_labels[c] for c in range(15)])
    assert "".join(labels) == "+++++S###E-----"
    walls, open_cells = [6, 7, 8], [0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14]
    assert np.all(g.transitions[:, open_cells][..., walls] == 0)  # walls are never entered
    assert g.transitions[0, 5, RIGHT, 5] == 1.0  # a blocked move stays
    good, bad = routes(g, 5)
    assert walk(g, good).tolist() == [5, 0, 1, 2, 3, 4, 9]
    assert walk(g, bad).tolist() == [5, 10, 11, 12, 13, 14, 9]
    # at the last step both routes stand on E: a tie
    assert g.preference.prob(g.horizon - 1, 9, STAY, 9, UP) == 0.5
    slippery = intermediate_preference_gridworld(slip=0.3)
    np.testing.assert_allclose(slippery.transitions.sum(-1), 1.0)
    assert np.all(slippery.transitions[:, open_cells][..., walls] == 0)


def test_best_response_takes_the_good_route_only_with_intermediate_preferences():
    L = 5
    full = intermediate_preference_gridworld(length=L)
    terminal = intermediate_preference_gridworld(length=L, terminal_only=True)
    H = full.horizon
    good, bad = routes(full, L)
    rng = np.random.default_rng(0)
    opponents = [full.uniform_policy(), good, bad, rng.dirichlet(np.ones(5), size=(H, 15))]

    # full game: the good route wins every step on the way (r = 1 against the bad route) and ties at the end
    assert full.value(good, bad) == pytest.approx(H / 2 + L * 0.5)
    for opp in opponents:
        assert full.value(good, opp) > full.value(bad, opp) + 1.0
        br, _ = full.best_response(opp)
        states = walk(full, br[0])
        assert states[-1] == full.end_cell
        assert all(full.cell_labels[s] == "+" for s in states[1:-1])  # the good route
    assert abs(full.exploitability(good)) < 1e-12 and full.exploitability(bad) == pytest.approx(L * 0.5)

    # terminal-only twin: 1/2 at every step but the last; the routes are indistinguishable
    np.testing.assert_array_equal(terminal.preference.dense(H)[:-1], 0.5)
    for opp in opponents:
        assert terminal.value(good, opp) == pytest.approx(terminal.value(bad, opp), abs=1e-12)
    assert terminal.value(good, bad) == pytest.approx(H / 2)
    assert abs(terminal.exploitability(good)) < 1e-12 and abs(terminal.exploitability(bad)) < 1e-12
    # ... while the end still matters: staying at the start loses the last step
    assert terminal.value(open_loop(terminal, []), good) == pytest.approx(H / 2 - 0.5)


def test_intermediate_horizon_and_strengths():
    g = intermediate_preference_gridworld(length=3, horizon=8, step_strength=0.1, terminal_strength=0.2)
    assert g.horizon == 8 and g.n_states == 9
    p = g.preference.prob
    assert p(0, 0, STAY, 6, STAY) == pytest.approx(0.7)  # good vs bad cell: 1/2 + 0.1 (1 - (-1))
    assert p(0, 3, STAY, 0, STAY) == pytest.approx(0.4)  # start vs good cell: 1/2 + 0.1 (0 - 1)
    assert p(7, 5, STAY, 0, STAY) == pytest.approx(0.7)  # end vs elsewhere at the last step
    assert p(7, 0, STAY, 6, STAY) == 0.5  # the last step ignores the route


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"length": 2}, "length must be an integer >= 3"), ({"horizon": 6}, "horizon 6 is too short.*>= 7"),
     ({"step_strength": 0.3}, r"step_strength must lie in \[0, 0.25\]"),
     ({"terminal_strength": 0.7}, "terminal_strength must lie in"),
     ({"terminal_only": "yes"}, "terminal_only must be a bool"), ({"slip": -0.1}, "slip")],
)
def test_intermediate_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        intermediate_preference_gridworld(**kwargs)


# ---------------------------------------------------------------- registry
def test_make_gridworld_names():
    assert set(GRIDWORLD_GENERATORS) == {"cyclic_goals", "intermediate", "random"}
    assert make_gridworld("cyclic_goals", width=3, height=3, horizon=3).n_states == 9
    assert make_gridworld("cyclic_goals_gridworld", width=3, height=3, horizon=3).n_states == 9
    assert make_gridworld("intermediate_preference_gridworld", length=3).n_states == 9
    a, b = make_gridworld("random", seed=3), random_gridworld(seed=3)
    np.testing.assert_array_equal(a.transitions, b.transitions)
    with pytest.raises(ValueError, match="unknown gridworld generator 'maze'"):
        make_gridworld("maze")
