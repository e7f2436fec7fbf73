"""Gridworld envs: API checkers, Monte Carlo vs exact values, rendering, validation, PPO."""

from __future__ import annotations

import gc
import importlib
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import prefgym
from prefgym.envs import PARALLEL_ENVS, GridworldEnv, GridworldParallelEnv, make_parallel, register_envs
from prefgym.envs.gridworld import PLAYER_COLOURS, aec_env
from prefgym.envs.registration import GRIDWORLD_ENV_KWARGS
from prefgym.errors import InvalidActionError
from prefgym.games import cyclic_goals_gridworld, intermediate_preference_gridworld, rps
from prefgym.games.gridworld import GridLayout, random_gridworld
from prefgym.games.markov import TabularMarkovGame

IDS = list(GRIDWORLD_ENV_KWARGS)
MODES = ["expected", "sample"]
WRAPPED_WARNING = "is different from the unwrapped version"
STAY, UP, DOWN, LEFT, RIGHT = range(5)


def small_game(seed: int = 1) -> TabularMarkovGame:
    """A 6-state random gridworld with two start states (K = 2) and H = 4."""
    g = random_gridworld(seed=seed, n_states=6, n_actions=3, horizon=4, slip=0.2)
    return TabularMarkovGame(g.transitions, g.preference, [0.6, 0, 0.4, 0, 0, 0], g.horizon, layout=g.layout)


def random_policy(game: TabularMarkovGame, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(game.n_actions, 0.5), size=game.policy_shape[:-1])


# ------------------------------------------------------------- API checkers
@pytest.mark.parametrize("render_mode", [None, "rgb_array", "ansi"])
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_sb3_checkers(env_id, render_mode):
    env = gymnasium.make(env_id, render_mode=render_mode, reward_mode="sample")
    gc.collect()  # an earlier test's unclosed file would warn here when collected
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
        gym_check_env(env)
        sb3_check_env(env.unwrapped)
        sb3_check_env(env)
    msgs = [str(w.message) for w in record if WRAPPED_WARNING not in str(w.message)]
    assert not msgs, msgs
    game = env.unwrapped.game
    assert env.observation_space == gymnasium.spaces.Discrete(game.n_states)
    assert env.action_space == gymnasium.spaces.Discrete(game.n_actions)


# Discrete observations are numpy integers, not arrays; PettingZoo's api_test notes it.
@pytest.mark.filterwarnings("ignore:Observation is not a NumPy array")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", IDS)
def test_pettingzoo_api_tests(env_id, mode):
    kwargs = {**GRIDWORLD_ENV_KWARGS[env_id], "reward_mode": mode}
    parallel_api_test(make_parallel(env_id, reward_mode=mode), num_cycles=10)
    parallel_seed_test(lambda: make_parallel(env_id, reward_mode=mode), num_cycles=10)
    api_test(aec_env(**kwargs), num_cycles=10)
    seed_test(lambda: aec_env(**kwargs), num_cycles=10)


@pytest.mark.filterwarnings("ignore:Observation is not a NumPy array")
def test_any_tabular_markov_game_passes_the_checkers():
    for game in (TabularMarkovGame.from_matrix_game(rps()), small_game()):  # no layout / two starts
        env = gymnasium.make("prefgym/GridworldRandom-v0", game=game, render_mode="rgb_array")
        assert env.unwrapped.game is game
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped)
        parallel_api_test(make_parallel("prefgym/GridworldIntermediate-v0", game=game), num_cycles=10)
        api_test(aec_env(game=game), num_cycles=10)


# ------------------------------------------------------------- registration
def test_registration_ids_defaults_and_overrides():
    expected_defaults = {
        "prefgym/Gridworld-v0": (25, 5, 8), "prefgym/GridworldCyclicGoals-v0": (25, 5, 8),
        "prefgym/GridworldIntermediate-v0": (15, 5, 7),
        "prefgym/GridworldRandom-v0": tuple(
            getattr(random_gridworld(seed=0), k) for k in ("n_states", "n_actions", "horizon")),
    }
    assert set(IDS) == set(expected_defaults) and set(IDS) <= set(PARALLEL_ENVS)
    assert {"prefgym/RPS-v0", "prefgym/MatrixGame-v0"} <= set(PARALLEL_ENVS)  # matrix ids kept
    for env_id, sizes in expected_defaults.items():
        spec = gymnasium.registry[env_id]
        assert spec.entry_point == "prefgym.envs.gridworld:GridworldEnv"
        assert spec.max_episode_steps == sizes[2]  # the default game's horizon
        game = gymnasium.make(env_id).unwrapped.game
        assert (game.n_states, game.n_actions, game.horizon) == sizes
        par = make_parallel(env_id)
        assert isinstance(par, GridworldParallelEnv)
        assert (par.game.n_states, par.game.n_actions, par.game.horizon) == sizes
        custom = intermediate_preference_gridworld(length=3)  # any game overrides the default
        assert gymnasium.make(env_id, game=custom).unwrapped.game is custom
        assert make_parallel(env_id, game=custom).game is custom
    assert gymnasium.registry["prefgym/RPS-v0"].entry_point == "prefgym.envs.matrix:MatrixGameEnv"

    env = gymnasium.make("prefgym/GridworldRandom-v0", generator_kwargs={"seed": 3, "n_states": 9})
    np.testing.assert_array_equal(env.unwrapped.game.transitions,
                                  random_gridworld(seed=3, n_states=9).transitions)
    env = gymnasium.make("prefgym/Gridworld-v0", generator="intermediate", generator_kwargs={"length": 4})
    assert env.unwrapped.game.n_states == 12
    with pytest.raises(ValueError, match="either game or generator"):
        gymnasium.make("prefgym/Gridworld-v0", game=custom, generator="random")
    with pytest.raises(ValueError, match="unknown gridworld generator 'maze'"):
        make_parallel("prefgym/Gridworld-v0", generator="maze")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
        importlib.reload(prefgym.envs)
        register_envs()


# ------------------------------------------------- Monte Carlo vs exact values
def _run_parallel(env, pi0, pi1, n, seed):
    rng = np.random.default_rng(seed)
    totals = np.zeros((n, 2))
    obs, infos = env.reset(seed=seed)
    for i in range(n):
        if i:
            obs, infos = env.reset()
        k = infos["player_0"]["start"]
        assert infos["player_1"]["start"] == k and obs["player_0"] == obs["player_1"]  # shared start
        while env.agents:
            h = infos["player_0"]["h"]
            acts = {a: rng.choice(pi.shape[-1], p=pi[k, h, obs[a]])
                    for a, pi in (("player_0", pi0), ("player_1", pi1))}
            obs, rewards, *_, infos = env.step(acts)
            totals[i] += rewards["player_0"], rewards["player_1"]
    return totals


def _run_single(env, pi0, n, seed):
    rng = np.random.default_rng(seed)
    totals = np.zeros(n)
    obs, info = env.reset(seed=seed)
    for i in range(n):
        if i:
            obs, info = env.reset()
        done = False
        while not done:
            a = rng.choice(pi0.shape[-1], p=pi0[info["start"], info["h"], obs])
            obs, reward, done, truncated, info = env.step(a)
            totals[i] += reward
    return totals


@pytest.mark.parametrize("mode", MODES)
def test_monte_carlo_returns_match_exact_values(mode):
    game = small_game()
    pi1 = random_policy(game, 1)
    pi0 = 0.5 * game.best_response(pi1)[0] + 0.5 * random_policy(game, 0)  # per-start, non-stationary
    exact = float(game.value(pi0, pi1))
    assert exact - game.horizon / 2 > 0.15  # a target far from the trivial H / 2
    n = 3000
    totals = _run_parallel(GridworldParallelEnv(game=game, reward_mode=mode), pi0, pi1, n, seed=10)
    np.testing.assert_allclose(totals.sum(axis=1), game.horizon)  # constant sum
    se = totals[:, 0].std() / np.sqrt(n)
    assert se < 0.06 and abs(totals[:, 0].mean() - exact) < 3 * se
    totals = _run_single(GridworldEnv(game=game, opponent=pi1, reward_mode=mode), pi0, n, seed=11)
    se = totals.std() / np.sqrt(n)
    assert se < 0.06 and abs(totals.mean() - exact) < 3 * se


def test_expected_reward_is_the_step_preference_and_infos():
    game = cyclic_goals_gridworld()
    env = GridworldEnv(game=game, opponent=np.broadcast_to(np.eye(5)[LEFT], (8, 25, 5)))
    obs, info = env.reset(seed=0)
    assert obs == 12 and info == {"h": 0, "start": 0}
    states = [12]
    for h, a in enumerate([UP, UP, STAY, STAY, STAY, STAY, STAY, STAY]):
        obs, reward, terminated, truncated, info = env.step(a)
        states.append(int(obs))
        assert info["h"] == h + 1 and info["opponent_action"] == LEFT and not truncated
        assert terminated == (h == 7)
        assert reward == info["win_prob"]
    assert states == [12, 7, 2, 2, 2, 2, 2, 2, 2]  # the last step does not move
    assert info["opponent_state"] == 10  # the opponent walked left onto G; R beats G
    assert reward == pytest.approx(0.9)
    with pytest.raises(InvalidActionError, match="episode is over"):
        env.step(0)

    par = GridworldParallelEnv(game=game)
    obs, infos = par.reset(seed=0)
    assert obs == {"player_0": 12, "player_1": 12} and infos["player_1"] == {"h": 0, "start": 0}
    for a0, a1 in [(RIGHT, LEFT), (RIGHT, LEFT)]:
        obs, rewards, term, trunc, infos = par.step({"player_0": a0, "player_1": a1})
    assert obs == {"player_0": 14, "player_1": 10}  # each player in its own copy
    assert infos["player_0"]["h"] == 2 and infos["player_0"]["opponent_state"] == 10
    obs, rewards, *_ = par.step({"player_0": STAY, "player_1": STAY})
    assert rewards["player_0"] == pytest.approx(0.1)  # player 0 on B, player 1 on G: G beats B
    assert rewards["player_1"] == pytest.approx(0.9)


def test_schedules_and_set_opponent():
    game = cyclic_goals_gridworld(3, 3, horizon=2)
    schedule_calls = []

    def schedule(i):
        schedule_calls.append(i)
        return np.broadcast_to(np.eye(5)[i % 5], (2, 9, 5))

    env = GridworldEnv(game=game, opponent=schedule)
    assert env.opponent is schedule and env.opponent_policy is None
    for i in range(3):
        env.reset(seed=i)
        assert env.step(STAY)[4]["opponent_action"] == i and env.episode_index == i
    assert schedule_calls == [0, 1, 2]
    env.set_opponent(np.broadcast_to(np.eye(5)[DOWN], (2, 9, 5)))  # effective from the next step
    assert env.step(STAY)[4]["opponent_action"] == DOWN
    env.set_opponent(lambda i: np.full((3, 9, 5), 0.2))
    with pytest.raises(ValueError, match="opponent policy must have shape"):
        env.reset()


def test_same_seed_same_trajectory():
    def rollout(env, seed, actions):
        return [env.reset(seed=seed)] + [env.step(a) for a in actions]

    game = small_game()
    actions = np.random.default_rng(0).integers(3, size=4)
    env = GridworldEnv(game=game, reward_mode="sample")
    runs = [repr(rollout(env, s, actions)) for s in (3, 3, 4, 5, 6)]
    assert runs[0] == runs[1] and len(set(runs[1:])) > 1
    par = GridworldParallelEnv(game=game, reward_mode="sample")
    joint = [{"player_0": a, "player_1": (a + 1) % 3} for a in actions]
    par_runs = [repr(rollout(par, s, joint)) for s in (3, 3, 4, 5, 6)]
    assert par_runs[0] == par_runs[1] and len(set(par_runs[1:])) > 1


# ------------------------------------------------------------------ rendering
def test_render_ansi_shows_both_players_and_labels():
    env = GridworldParallelEnv(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    rows = text.splitlines()
    assert rows[0].startswith("step 0/8") and rows[2:7] == [
        "| . . R . . |", "| . . . . . |", "| G . * . B |", "| . . . . . |", "| . . . . . |"]
    env.step({"player_0": UP, "player_1": DOWN})
    rows = env.render().splitlines()
    assert rows[3] == "| . . 0 . . |" and rows[4] == "| G . S . B |" and rows[5] == "| . . 1 . . |"
    assert "r=0.500" in rows[0] and "player_0 at 7, player_1 at 17" in rows[0]
    single = GridworldEnv(game=intermediate_preference_gridworld(length=3), render_mode="ansi")
    assert "call reset()" in single.render()
    single.reset(seed=0)
    single.set_opponent(np.broadcast_to(np.eye(5)[DOWN], (5, 9, 5)))
    single.step(UP)
    assert single.render().splitlines()[2:5] == ["| 0 + + |", "| S # E |", "| 1 - - |"]


def test_render_rgb_array_draws_paths():
    env = GridworldParallelEnv(render_mode="rgb_array")
    blank = env.render()
    assert blank.shape == (120, 120, 3) and blank.dtype == np.uint8
    env.reset(seed=0)
    frames = [env.render()]
    for a0, a1 in [(UP, LEFT), (UP, LEFT), (STAY, DOWN)]:
        env.step({"player_0": a0, "player_1": a1})
        frames.append(env.render())
    for before, after in zip(frames, frames[1:], strict=False):
        assert after.shape == (120, 120, 3) and after.dtype == np.uint8
        assert not np.array_equal(before, after)
    last = frames[-1]
    for colour in PLAYER_COLOURS:  # both paths are drawn
        assert np.all(last == colour, axis=-1).sum() > 40
    # player 0 went up from the centre (column 2), player 1 left then down (row 2, then column 0)
    p0, p1 = (np.all(last == c, axis=-1) for c in PLAYER_COLOURS)
    assert p0[:, 48:72].sum() == p0.sum() and p1[48:, :72].sum() == p1.sum()
    # a game without a layout is drawn on a near-square grid
    game = TabularMarkovGame(np.full((5, 2, 5), 0.2), np.full((5, 2, 5, 2), 0.5), np.eye(5)[0], 3)
    env = GridworldEnv(game=game, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (48, 72, 3)
    env = GridworldEnv(game=game, render_mode="ansi")
    env.reset(seed=0)
    assert env.render().splitlines()[2:4] == ["| * . . |", "| . .   |"]
    with pytest.warns(UserWarning, match="render_mode"):
        assert GridworldEnv(game=game).render() is None


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("action", "match"),
    [(5, r"action 5 is out of range.*\[0, 5\)"), (-1, "out of range"), (1.5, r"invalid action 1.5"),
     ("up", "invalid action 'up'"), (np.array([0, 1]), "invalid action"), (True, "invalid action True")],
)
def test_bad_actions_raise(action, match):
    env = GridworldEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    par = GridworldParallelEnv()
    par.reset(seed=0)
    with pytest.raises(ValueError, match=match.replace("action", "player_0 action", 1)):
        par.step({"player_0": action, "player_1": 0})


def test_step_order_and_action_keys():
    with pytest.raises(InvalidActionError, match="reset"):
        GridworldEnv().step(0)
    par = GridworldParallelEnv()
    with pytest.raises(InvalidActionError, match="reset"):
        par.step({"player_0": 0, "player_1": 0})
    par.reset(seed=0)
    with pytest.raises(ValueError, match="actions needed for exactly"):
        par.step({"player_0": 0})


@pytest.mark.parametrize(
    ("policy", "match"),
    [(np.full((8, 25, 4), 0.25), r"shape \(H, S, A\) or \(K, H, S, A\) = \(1, 8, 25, 5\)"),
     (np.full((2, 1, 8, 25, 5), 0.2), "batch of shape"),
     (np.full((8, 25, 5), 0.3), r"sums to 1.5, not 1"),
     (np.full((25, 5), 0.2), "must have shape"),
     (np.concatenate([np.full((8, 25, 4), 0.5), np.full((8, 25, 1), -1.0)], -1), "negative or NaN")],
)
def test_bad_opponent_policies_raise(policy, match):
    with pytest.raises(ValueError, match=match):
        GridworldEnv(opponent=policy)
    env = GridworldEnv()
    with pytest.raises(ValueError, match=match):
        env.set_opponent(policy)
    np.testing.assert_array_equal(env.opponent, np.full((1, 8, 25, 5), 0.2))  # unchanged on failure


def test_bad_games_and_arguments_raise():
    S, A, H = 3, 2, 2
    f = np.full((S, A, S), 1 / 3)
    r = np.full((S, A, S, A), 0.5)
    nu = np.eye(S)[0]
    bad_tensors = [
        ({"transitions": np.full((S, A, S), 0.5)}, r"transition row f\[0, 0, 0, :\] sums to 1.5"),
        ({"transitions": np.full((S, A, 2), 0.5)}, r"transitions must have shape \(S, A, S\)"),
        ({"preference": np.where(np.arange(S)[:, None, None, None] == 0, 0.9, r)}, "not antisymmetric"),
        ({"preference": np.full((S, A, S, A), 1.5)}, r"outside \[0, 1\]"),
        ({"initial_distribution": [0.5, 0.2, 0.2]}, "initial_distribution must be"),
        ({"horizon": 0}, "horizon must be an integer"),
    ]
    for bad, match in bad_tensors:
        kwargs = {"transitions": f, "preference": r, "initial_distribution": nu, "horizon": H} | bad
        with pytest.raises(ValueError, match=match):
            GridworldEnv(game=TabularMarkovGame(**kwargs))
    game = TabularMarkovGame(f, r, nu, H)
    with pytest.raises(TypeError, match="TabularMarkovGame; got ndarray"):
        GridworldEnv(game=r)
    game.layout = GridLayout(4, 2)
    with pytest.raises(ValueError, match="n_cells = n_states = 3"):
        GridworldParallelEnv(game=game)
    game.layout, game.cell_labels = GridLayout(3, 3), {5: "R"}
    with pytest.raises(ValueError, match=r"keys must be states in \[0, 3\)"):
        GridworldEnv(game=game)
    game.cell_labels = {0: ""}
    with pytest.raises(ValueError, match="non-empty strings"):
        GridworldEnv(game=game)
    with pytest.raises(ValueError, match="reward_mode"):
        GridworldEnv(reward_mode="mean")
    with pytest.raises(ValueError, match="render_mode"):
        GridworldParallelEnv(render_mode="human")
    with pytest.raises(ValueError, match="horizon 1 is too short"):
        GridworldEnv(generator_kwargs={"horizon": 1})


# ---------------------------------------------------------------------- PPO
def test_ppo_beats_a_uniform_opponent():
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    # any goal beats the uniform opponent's wandering; the goals are one move from the start
    game = cyclic_goals_gridworld(3, 3, horizon=5, cycle=0.5, goal_bonus=0.5)
    uniform = game.horizon / 2
    best = uniform + float(game.best_response(game.uniform_policy())[1][0])
    assert best - uniform > 1.0
    env = Monitor(gymnasium.make("prefgym/Gridworld-v0", game=game))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: extra threads only contend for the 2 cores
    try:
        model = PPO("MlpPolicy", env, n_steps=256, batch_size=64, learning_rate=3e-3, seed=0,
                    device="cpu", verbose=0)
        # the untrained policy samples near-uniform actions: its return is about H / 2
        before = evaluate_policy(model, env, n_eval_episodes=100, deterministic=False)[0]
        model.learn(total_timesteps=3072)
        after = evaluate_policy(model, env, n_eval_episodes=100, deterministic=True)[0]
    finally:
        torch.set_num_threads(threads)
    assert abs(before - uniform) < 0.3 and after > before + 0.6
    # the learned (stationary) policy, evaluated exactly, is close to the best response
    actions = model.predict(np.arange(game.n_states), deterministic=True)[0]
    learned = np.broadcast_to(np.eye(game.n_actions)[actions], game.policy_shape[1:])
    assert float(game.value(learned, game.uniform_policy())) > uniform + 0.8 * (best - uniform)
