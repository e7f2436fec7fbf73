"""Gymnasium / PettingZoo matrix-game envs: API checkers, rewards, seeding, PPO."""

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
from prefgym.envs import (
    PARALLEL_ENVS,
    MatrixGameEnv,
    MatrixGameParallelEnv,
    aec_env,
    make_parallel,
    parallel_env,
    register_envs,
)
from prefgym.errors import InvalidActionError
from prefgym.games import make_game, rps

GAMES = {
    "rps": {"generator": "rps"},
    "random5": {"generator": "random", "generator_kwargs": {"n": 5, "seed": 0}},
}
MODES = ["expected", "sample"]
WRAPPED_WARNING = "is different from the unwrapped version"


def _no_warnings(record) -> None:
    msgs = [str(w.message) for w in record if WRAPPED_WARNING not in str(w.message)]
    assert not msgs, msgs


# ------------------------------------------------------------- API checkers
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("game", GAMES)
def test_gymnasium_and_sb3_checkers(game, mode):
    env = gymnasium.make("prefgym/MatrixGame-v0", reward_mode=mode, rounds=3, **GAMES[game])
    gc.collect()  # an earlier test's unclosed file would warn here when collected
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
        gym_check_env(env)
        sb3_check_env(env.unwrapped)
        sb3_check_env(env)
    _no_warnings(record)
    n = env.unwrapped.n_actions
    assert env.observation_space == gymnasium.spaces.Discrete(n + 1)
    assert env.action_space == gymnasium.spaces.Discrete(n)


# Discrete observations are numpy integers, not arrays; PettingZoo's api_test notes it.
@pytest.mark.filterwarnings("ignore:Observation is not a NumPy array")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("game", GAMES)
def test_pettingzoo_api_tests(game, mode):
    kwargs = {**GAMES[game], "reward_mode": mode, "rounds": 4}
    parallel_api_test(parallel_env(**kwargs), num_cycles=10)
    parallel_seed_test(lambda: parallel_env(**kwargs), num_cycles=10)
    api_test(aec_env(**kwargs), num_cycles=10)
    seed_test(lambda: aec_env(**kwargs), num_cycles=10)


def test_registration_ids_defaults_and_idempotence():
    for env_id in ("prefgym/RPS-v0", "prefgym/MatrixGame-v0"):
        spec = gymnasium.registry[env_id]
        assert spec.entry_point == "prefgym.envs.matrix:MatrixGameEnv"
        assert spec.max_episode_steps == 1  # the default rounds; the env terminates itself there
        env = gymnasium.make(env_id)
        assert gymnasium.make(env_id, rounds=3).spec.max_episode_steps == 3  # SyncTimeLimit
        np.testing.assert_array_equal(env.unwrapped.game.preference, rps().preference)
        par = make_parallel(env_id, rounds=2)
        assert isinstance(par, MatrixGameParallelEnv) and par.rounds == 2
        np.testing.assert_array_equal(par.game.preference, rps().preference)
    assert {"prefgym/RPS-v0", "prefgym/MatrixGame-v0"} <= set(PARALLEL_ENVS)  # gridworld ids too

    env = gymnasium.make("prefgym/MatrixGame-v0", **GAMES["random5"])
    expected = make_game("random", n=5, seed=0).preference
    np.testing.assert_array_equal(env.unwrapped.game.preference, expected)
    env = gymnasium.make("prefgym/MatrixGame-v0", matrix=expected)
    np.testing.assert_array_equal(env.unwrapped.game.preference, expected)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
        importlib.reload(prefgym.envs)
        register_envs()
    with pytest.raises(ValueError, match="unknown parallel env id"):
        make_parallel("prefgym/Nope-v0")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="at most one of"):
        MatrixGameEnv(matrix=rps().preference, generator="rps")
    with pytest.raises(ValueError, match="batch"):
        MatrixGameEnv(generator="random", generator_kwargs={"n": 3, "batch": 2})
    with pytest.raises(ValueError, match="P\\[0, 1\\]"):
        MatrixGameEnv(matrix=[[0.5, 0.9], [0.3, 0.5]])
    with pytest.raises(ValueError, match="reward_mode"):
        MatrixGameEnv(reward_mode="mean")
    with pytest.raises(ValueError, match="rounds"):
        MatrixGameParallelEnv(rounds=0)
    with pytest.raises(ValueError, match="render_mode"):
        MatrixGameEnv(render_mode="human")


# ----------------------------------------------------------------- rewards
@pytest.mark.parametrize("game", GAMES)
def test_expected_reward_is_exact(game):
    env = MatrixGameEnv(**GAMES[game])
    n = env.n_actions
    P = env.game.preference
    opp = np.random.default_rng(1).dirichlet(np.ones(n))
    env.set_opponent(opp)
    np.testing.assert_allclose(env.opponent, opp, rtol=1e-12)  # renormalised to sum to 1
    target = P @ env.opponent
    for a in range(n):
        env.reset(seed=a)
        _, reward, terminated, truncated, info = env.step(a)
        assert reward == target[a] and info["win_prob"] == target[a]
        assert 0 <= info["opponent_action"] < n
        assert terminated and not truncated
    par = MatrixGameParallelEnv(**GAMES[game])
    for a0 in range(n):
        for a1 in range(n):
            par.reset(seed=a0)
            _, rew, term, trunc, infos = par.step({"player_0": a0, "player_1": a1})
            assert rew["player_0"] == P[a0, a1] and rew["player_1"] == 1.0 - P[a0, a1]
            assert infos["player_0"]["win_prob"] == P[a0, a1] and all(term.values())
            assert not any(trunc.values())


def test_sample_mode_matches_expectation():
    steps = 4000
    game = make_game("random", n=5, seed=0)
    opp = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    env = MatrixGameEnv(game=game, opponent=opp, reward_mode="sample", rounds=steps)
    env.reset(seed=7)
    a = 3
    out = [env.step(a) for _ in range(steps)]
    rewards = np.array([o[1] for o in out])
    b = np.array([o[4]["opponent_action"] for o in out])
    assert set(np.unique(rewards)) <= {0.0, 1.0}
    assert [o[2] for o in out] == [False] * (steps - 1) + [True]
    assert not any(o[3] for o in out)
    np.testing.assert_array_equal([o[0] for o in out], b)  # observation = opponent's last action
    p = (game.preference @ opp)[a]
    assert abs(rewards.mean() - p) < 4 * np.sqrt(p * (1 - p) / steps)
    freq = np.bincount(b, minlength=5) / steps
    assert np.all(np.abs(freq - opp) < 4 * np.sqrt(opp * (1 - opp) / steps))

    par = MatrixGameParallelEnv(game=game, reward_mode="sample", rounds=steps)
    par.reset(seed=7)
    r0, r1 = np.array([
        [r["player_0"], r["player_1"]]
        for r in (par.step({"player_0": 1, "player_1": 4})[1] for _ in range(steps))
    ]).T
    np.testing.assert_array_equal(r0 + r1, 1.0)
    p = game.preference[1, 4]
    assert abs(r0.mean() - p) < 4 * np.sqrt(p * (1 - p) / steps)


# --------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("action", "match"),
    [(3, r"action 3 is out of range.*\[0, 3\)"), (-1, r"action -1 is out of range"),
     (1.5, r"invalid action 1.5 \(type float\).*\[0, 3\)"), ("r", r"invalid action 'r'"),
     (np.array([0, 1]), r"invalid action"), (True, r"invalid action True")],
)
def test_bad_actions_raise(action, match):
    env = MatrixGameEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    par = MatrixGameParallelEnv()
    par.reset(seed=0)
    with pytest.raises(ValueError, match=match.replace("action", "player_1 action", 1)):
        par.step({"player_0": 0, "player_1": action})


def test_good_action_types_accepted_and_parallel_action_keys_checked():
    env = MatrixGameEnv(rounds=5)
    env.reset(seed=0)
    for a in (2, np.int32(2), np.int64(2), np.array(2), np.array([2])):
        assert env.step(a)[4]["win_prob"] == 0.5
    par = MatrixGameParallelEnv()
    par.reset(seed=0)
    with pytest.raises(ValueError, match="actions needed for exactly"):
        par.step({"player_0": 0})
    with pytest.raises(InvalidActionError, match="reset"):
        MatrixGameEnv().step(0)


@pytest.mark.parametrize(
    ("policy", "match"),
    [([0.5, 0.5], "last dimension 3"), ([0.5, 0.7, -0.2], "negative"),
     ([0.3, 0.3, 0.3], "sum to 1"), ([[1 / 3] * 3], "1-D"), ([np.nan, 0.5, 0.5], "NaN")],
)
def test_bad_opponents_raise(policy, match):
    with pytest.raises(ValueError, match=match):
        MatrixGameEnv(opponent=policy)
    env = MatrixGameEnv()
    with pytest.raises(ValueError, match=match):
        env.set_opponent(policy)
    np.testing.assert_array_equal(env.opponent, np.full(3, 1 / 3))  # unchanged on failure


def test_set_opponent_takes_effect_immediately_and_callables():
    env = MatrixGameEnv(rounds=3)
    P = env.game.preference
    env.reset(seed=0)
    env.set_opponent([0.0, 1.0, 0.0])
    obs, reward, *_, info = env.step(0)
    assert obs == 1 and info["opponent_action"] == 1 and reward == P[0, 1]
    env.set_opponent(lambda rng: np.eye(3)[rng.integers(3)])
    for _ in range(2):
        obs, reward, *_ = env.step(0)
        assert reward == P[0, obs]
    env.set_opponent(lambda rng: [0.2, 0.2])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="last dimension 3"):
        env.step(0)


# ------------------------------------------------------- seeding, rendering
def _rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    traj = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        traj.append((obs, r, term, trunc, info))
    return traj


def test_same_seed_same_trajectory():
    actions = np.random.default_rng(0).integers(5, size=30)
    env = MatrixGameEnv(**GAMES["random5"], reward_mode="sample", rounds=30)
    a, b, c = (_rollout(env, s, actions) for s in (123, 123, 124))
    assert a == b and a != c
    par = MatrixGameParallelEnv(**GAMES["random5"], reward_mode="sample", rounds=30)
    joint = [{"player_0": x, "player_1": (x + 1) % 5} for x in actions]
    assert _rollout(par, 5, joint) == _rollout(par, 5, joint)


def test_render_ansi():
    env = MatrixGameEnv(render_mode="ansi")
    env.reset(seed=0)
    assert "no moves yet" in env.render()
    env.step(2)
    text = env.render()
    assert isinstance(text, str) and "agent plays 2" in text and "round 1/1" in text
    par = MatrixGameParallelEnv(render_mode="ansi")
    par.reset(seed=0)
    par.step({"player_0": 0, "player_1": 1})
    assert "player_0 plays 0, player_1 plays 1" in par.render()
    assert "P(player_0 wins)=1.000" in par.render()


# ---------------------------------------------------------------------- PPO
def test_ppo_learns_best_response_to_biased_opponent():
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO

    opp = np.array([0.6, 0.2, 0.2])  # rock-heavy: paper (2) is the best response
    best = int(np.argmax(rps().preference @ opp))
    assert best == 2
    env = gymnasium.make("prefgym/RPS-v0", opponent=opp, reward_mode="expected")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: extra threads only contend for the 2 cores
    try:
        model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0, device="cpu", verbose=0)
        model.learn(total_timesteps=2048)
    finally:
        torch.set_num_threads(threads)
    start = np.int64(3)  # every episode of one round is played from the start observation
    action, _ = model.predict(start, deterministic=True)
    assert int(action) == best
    obs_tensor, _ = model.policy.obs_to_tensor(start)
    with torch.no_grad():
        probs = model.policy.get_distribution(obs_tensor).distribution.probs[0].numpy()
    assert probs[best] > 0.8
