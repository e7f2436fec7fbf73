"""One game protocol (``PreferenceGame``) and one resolver from anything to a game (``game_of``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from prefgym.agents.markov.base import exploitability_from_payoff, resolve_markov_game
from prefgym.agents.tabular.base import resolve_game
from prefgym.cli import game_from_env
from prefgym.cli_common import CLIError, gridworld_kwargs
from prefgym.data.dialogue import make_synthetic_dialogue_tasks
from prefgym.data.multiturn import MultiTurnMenuProblem
from prefgym.envs.games import env_make_kwargs, game_of
from prefgym.errors import InvalidArgumentError, InvalidGameError, InvalidTypeError
from prefgym.games import (
    GAME_KINDS,
    MatrixGame,
    MultiTurnGame,
    PreferenceGame,
    TabularMarkovGame,
    make_gridworld,
    random_gridworld,
    random_skew_symmetric,
    rps,
)
from prefgym.judges.tasks import DialogueTaskJudge
from prefgym.preferences import BradleyTerry


@pytest.fixture(scope="module")
def dialogue():
    tasks = [t for t in make_synthetic_dialogue_tasks(12, seed=0) if t.horizon == 3][:2]
    judge = DialogueTaskJudge(tasks, eps=0.1, scope="all")
    return MultiTurnMenuProblem(tasks, judge=judge), judge


@pytest.fixture(scope="module")
def grid():
    return make_gridworld("cyclic_goals")


def _random_policy(shape, seed):
    x = np.random.default_rng(seed).random(shape) + 0.05
    return x / x.sum(-1, keepdims=True)


# ------------------------------------------------------------------ the protocol
def test_every_game_kind_is_a_preference_game(dialogue, grid):
    games = [rps(), random_skew_symmetric(4, seed=0, batch=3), grid,
             TabularMarkovGame.from_matrix_game(rps()), dialogue[0]]
    assert [g.kind for g in games] == ["matrix", "matrix", "markov", "markov", "multiturn"]
    assert set(GAME_KINDS) == {g.kind for g in games}
    for g in games:
        assert isinstance(g, PreferenceGame)
    assert isinstance(dialogue[0], MultiTurnGame)
    # neither an array, an env nor a preference model is a game
    import gymnasium as gym

    import prefgym.envs  # noqa: F401

    env = gym.make("prefgym/RPS-v0")
    others = (np.eye(3), env, env.unwrapped, BradleyTerry([0.0, 1.0]))
    assert not any(isinstance(x, PreferenceGame) for x in others)
    env.close()


def test_matrix_game_face_agrees_with_its_matrix():
    game = random_skew_symmetric(5, seed=1)
    P = game.preference
    assert (game.horizon, game.n_actions) == (1, 5)
    assert (game.start_states(), game.actions(0)) == ((0,), tuple(range(5)))
    for a, b in itertools.product(range(5), repeat=2):
        assert game.preference_between(a, b) == P[a, b]
        assert game.preference_between(a, b) + game.preference_between(b, a) == pytest.approx(1.0)
    np.testing.assert_array_equal(game.preference_between([0, 1, 4], [2, 2, 3]), P[[0, 1, 4], [2, 2, 3]])
    batch = random_skew_symmetric(3, seed=2, batch=4)
    np.testing.assert_array_equal(batch.preference_between(0, 2), batch.preference[:, 0, 2])
    # exact evaluation: max_a P(a > pi) - 1/2, half the duality gap, 0 at the LP's Nash equilibrium
    pi = _random_policy(5, seed=3)
    assert float(game.exploitability(pi)) == pytest.approx(float((P @ pi).max() - 0.5), abs=1e-12)
    assert float(game.exploitability(pi)) == pytest.approx(float(game.duality_gap(pi)) / 2, abs=1e-12)
    assert float(game.exploitability(game.nash_equilibrium())) == pytest.approx(0.0, abs=1e-8)
    assert float(rps().exploitability(np.array([1.0, 0.0, 0.0]))) == pytest.approx(0.5)  # paper beats rock
    with pytest.raises(InvalidArgumentError, match="first must be an integer action"):
        game.preference_between(5, 0)
    with pytest.raises(InvalidArgumentError, match="one state 0"):
        game.actions(1)


def test_markov_game_face_agrees_with_backward_induction(grid):
    dense = grid.preference.dense(grid.horizon)
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, s, s2 = rng.integers(grid.horizon), rng.integers(grid.n_states), rng.integers(grid.n_states)
        a, a2 = rng.integers(grid.n_actions, size=2)
        p = grid.preference_between((h, s, a), (h, s2, a2))
        assert p == pytest.approx(dense[h, s, a, s2, a2])
        assert p + grid.preference_between((h, s2, a2), (h, s, a)) == pytest.approx(1.0)
    assert grid.start_states() == tuple(int(s) for s in grid.initial_states)
    assert grid.actions(3) == tuple(range(grid.n_actions))
    # exact evaluation: the agents' backward induction from the stage payoff gives the same number
    pi = _random_policy(grid.policy_shape, seed=4)
    payoff = grid.stage_payoff(grid.occupancy(pi))
    exact = exploitability_from_payoff(grid, payoff)
    assert float(grid.exploitability(pi)) == pytest.approx(exact, abs=1e-10)
    assert float(grid.exploitability(pi)) > 0.05
    # a matrix game as the H = 1 one-state Markov game: same preferences, same exploitability
    game = random_skew_symmetric(4, seed=5)
    markov = TabularMarkovGame.from_matrix_game(game)
    q = _random_policy(4, seed=6)
    expected = float(game.exploitability(q))
    assert float(markov.exploitability(q[None, None])) == pytest.approx(expected, abs=1e-12)
    assert markov.preference_between((0, 0, 1), (0, 0, 3)) == pytest.approx(game.preference_between(1, 3))
    with pytest.raises(InvalidArgumentError, match="same step"):
        grid.preference_between((0, 0, 0), (1, 0, 0))
    with pytest.raises(InvalidArgumentError, match=r"first\[1\]"):
        grid.preference_between((0, grid.n_states, 0), (0, 0, 0))


def test_multiturn_game_face_agrees_with_its_judge(dialogue):
    problem, judge = dialogue
    assert (problem.horizon, problem.n_actions) == (3, 3)
    assert problem.start_states() == tuple(problem.first_states)
    state = problem.state(1, problem.replies(1, (0,)))
    assert problem.actions(state) == problem.menu_at(1, problem.replies(1, (0,)))
    assert problem.exploitability(None) is None  # no exact evaluation in the games layer
    eps = judge.eps
    for i in range(len(problem)):
        for x, y in itertools.combinations(range(problem.n ** problem.horizon), 2):
            a, b = problem.trajectories(i)[x], problem.trajectories(i)[y]
            p = problem.preference_between((i, a), (i, b))
            # the closed form of DialogueTaskJudge(scope="all"): more correct replies wins w.p. 1 - eps
            na, nb = (sum(problem.reply_correct(i, r[:h]) for h in range(1, 4)) for r in (a, b))
            assert p == pytest.approx(0.5 + (0.5 - eps) * np.sign(na - nb))
            assert p + problem.preference_between((i, b), (i, a)) == pytest.approx(1.0)
    right, wrong = problem.replies(0, (0, 0, 0)), problem.replies(0, (0, 2, 2))
    assert problem.preference_between((0, right[:2]), (0, wrong[:2])) == pytest.approx(1 - eps)
    with pytest.raises(InvalidArgumentError, match="one task at one turn"):
        problem.preference_between((0, right), (1, problem.replies(1, (0, 0, 0))))
    with pytest.raises(InvalidArgumentError, match="has no judge"):
        MultiTurnMenuProblem(problem.tasks).preference_between((0, right), (0, wrong))


def test_multiturn_base_class_leaves_the_text_format_to_subclasses(dialogue):
    problem, _ = dialogue
    with pytest.raises(NotImplementedError):
        MultiTurnGame(problem.tasks, menu=lambda task, h: ("a", "b"))  # no state() of its own
    assert MultiTurnMenuProblem(problem.tasks).fingerprint() == problem.fingerprint()
    with pytest.raises(InvalidGameError, match="at least one task"):
        MultiTurnMenuProblem([])
    with pytest.raises(InvalidGameError, match="N >= 2"):
        MultiTurnMenuProblem(problem.tasks, menu=lambda task, h: ("only",))
    with pytest.raises(InvalidArgumentError, match=r"turn h must be in 1\.\.3"):
        problem.menu_at(0, 4)


# ------------------------------------------------------------------ the resolver
def test_game_of_each_kind_of_input(grid):
    game = rps()
    assert game_of(game) is game and game_of(grid) is grid
    np.testing.assert_array_equal(game_of(game.preference).preference, game.preference)
    assert game_of(BradleyTerry([0.0, 1.0])).preference_between(1, 0) == pytest.approx(1 / (1 + np.exp(-1)))
    assert game_of([[0.5, 1.0], [0.0, 0.5]]).n_actions == 2
    import gymnasium as gym

    import prefgym.envs  # noqa: F401

    env = gym.make("prefgym/Gridworld-v0")  # wrapped (TimeLimit, order enforcing, ...)
    assert game_of(env) is env.unwrapped.game
    env.close()
    by_id = game_of("prefgym/GridworldRandom-v0", env_kwargs={"seed": 3})
    direct = random_gridworld(seed=3)
    np.testing.assert_array_equal(by_id.transitions, direct.transitions)
    assert isinstance(game_of("prefgym/RPS-v0"), MatrixGame)
    # kind="markov" turns one matrix game into the equal H = 1 game
    markov = game_of(game, kind="markov")
    assert (markov.kind, markov.horizon, markov.n_states) == ("markov", 1, 1)
    for a, b in itertools.product(range(3), repeat=2):
        p = game_of("prefgym/RPS-v0", kind="markov").preference_between((0, 0, a), (0, 0, b))
        assert p == game.preference_between(a, b)
    assert game_of(grid, kind="markov") is grid and game_of(game, kind="matrix") is game


def test_game_of_errors_are_clear():
    with pytest.raises(InvalidTypeError, match="expected a PreferenceGame"):
        game_of(object())
    with pytest.raises(InvalidTypeError, match="expected a MatrixGame"):
        game_of(object(), kind="matrix")
    with pytest.raises(InvalidGameError, match="is a Markov game .*a matrix game is needed"):
        game_of("prefgym/Gridworld-v0", kind="matrix")
    with pytest.raises(InvalidGameError, match="is a matrix game .*a multi-turn game is needed"):
        game_of(rps(), kind="multiturn")
    with pytest.raises(InvalidGameError, match=r"batch of matrix games of shape \(2,\)"):
        game_of(random_skew_symmetric(3, seed=0, batch=2), kind="markov")
    with pytest.raises(InvalidArgumentError, match="kind must be None or one of"):
        game_of(rps(), kind="tabular")
    with pytest.raises(InvalidArgumentError, match="env_kwargs are for an env id"):
        game_of(rps(), env_kwargs={"rounds": 2})
    with pytest.raises(InvalidArgumentError, match="cannot make environment 'prefgym/NoSuch-v0'"):
        game_of("prefgym/NoSuch-v0")
    with pytest.raises(InvalidArgumentError, match="unknown game generator 'nope'"):
        game_of("prefgym/MatrixGame-v0", env_kwargs={"generator": "nope"})
    with pytest.raises(InvalidArgumentError, match="exposes no preference game"):
        game_of("prefgym/Dialogue-v0")
    with pytest.raises(InvalidGameError):
        game_of(np.array([[0.5, 0.9], [0.9, 0.5]]))  # not a preference matrix: P + P^T != 1


def test_old_resolvers_are_thin_calls_with_the_same_results(grid):
    game = random_skew_symmetric(4, seed=7)
    assert resolve_game(game) is game
    np.testing.assert_array_equal(resolve_game("prefgym/RPS-v0").preference, rps().preference)
    np.testing.assert_array_equal(resolve_game(game.preference).preference, game.preference)
    m = resolve_markov_game(game)
    np.testing.assert_array_equal(m.preference.dense(1)[0, 0, :, 0, :], game.preference)
    assert resolve_markov_game(grid) is grid
    small = game_from_env("prefgym/GridworldRandom-v0", {"n_states": 4, "n_actions": 2, "horizon": 3})
    assert (small.n_states, small.n_actions, small.horizon) == (4, 2, 3)
    with pytest.raises(TypeError, match="expected a MatrixGame"):
        resolve_game(object())
    with pytest.raises(TypeError, match="TabularMarkovGame"):
        resolve_markov_game(object())
    with pytest.raises(ValueError, match="a matrix game is needed"):
        resolve_game("prefgym/Gridworld-v0")
    with pytest.raises(CLIError, match="not a prefgym id"):
        game_from_env("CartPole-v1", {})
    with pytest.raises(CLIError, match="cannot make environment"):
        game_from_env("prefgym/GridworldRandom-v0", {"no_such_arg": 1})


def test_gridworld_keyword_routing_lives_on_the_env_side():
    assert env_make_kwargs("prefgym/GridworldRandom-v0", {"seed": 3}) == \
        {"generator_kwargs": {"seed": 3}}
    merged = env_make_kwargs("prefgym/GridworldRandom-v0", {"n_states": 4, "generator_kwargs": {"seed": 1}})
    assert merged == {"generator_kwargs": {"seed": 1, "n_states": 4}}
    assert env_make_kwargs("prefgym/Gridworld-v0", {"generator": "random", "seed": 2}) == \
        {"generator": "random", "generator_kwargs": {"seed": 2}}
    assert env_make_kwargs("prefgym/RPS-v0", {"rounds": 2}) == {"rounds": 2}
    assert gridworld_kwargs("prefgym/GridworldRandom-v0", {"seed": 5}) == {"generator_kwargs": {"seed": 5}}
    with pytest.raises(InvalidArgumentError, match="generator_kwargs must be a JSON object"):
        env_make_kwargs("prefgym/GridworldRandom-v0", {"generator_kwargs": [1], "seed": 2})


def test_matrix_env_rounds_set_the_selfplay_horizon():
    from prefgym.envs.matrix import parallel_env
    from prefgym.selfplay import episode_horizon

    assert episode_horizon(parallel_env(rounds=3)) == 3  # not the one-move game's horizon 1
    from prefgym.envs.gridworld import parallel_env as grid_parallel_env

    assert episode_horizon(grid_parallel_env()) == 8


def test_old_import_path_of_the_dialogue_problem_still_works():
    pytest.importorskip("torch")
    from prefgym.agents.llm.multiturn import MultiTurnMenuProblem as from_package
    from prefgym.agents.llm.multiturn.problem import UNSURE, MultiTurnMenuProblem, dialogue_turn_menu
    from prefgym.data import multiturn

    assert MultiTurnMenuProblem is from_package is multiturn.MultiTurnMenuProblem
    assert (UNSURE, dialogue_turn_menu) == (multiturn.UNSURE, multiturn.dialogue_turn_menu)


def test_multiturn_preferences_match_the_exact_episode_win_matrices(dialogue):
    pytest.importorskip("torch")
    from prefgym.agents.llm.multiturn import trajectory_win_matrices
    from prefgym.agents.llm.reasoning_menu import ReasoningMenuProblem, arithmetic_menu_tasks
    from prefgym.judges.tasks import FinalAnswerJudge

    tasks = arithmetic_menu_tasks(2, seed=0)
    reasoning = ReasoningMenuProblem(tasks, judge=FinalAnswerJudge(tasks, eps=0.1))
    for problem in (dialogue[0], reasoning):
        assert isinstance(problem, PreferenceGame) and problem.kind == "multiturn"
        W = trajectory_win_matrices(problem, problem.judge)
        for i in range(len(problem)):
            paths = problem.trajectories(i)
            mine = np.array([[problem.preference_between((i, a), (i, b)) for b in paths] for a in paths])
            np.testing.assert_allclose(mine, W[i], atol=1e-12)
        assert len(np.unique(W)) == 3  # wins, ties and losses all occur
