"""Control preference envs: feedback wrapper, two-player game, single-agent view, learned-reward wrapper."""

from __future__ import annotations

import gc
import importlib.util
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from prefgym.data.control import PreferencePairs, scripted_policy
from prefgym.envs.mujoco import (
    CONTROL_TASKS,
    ControlPreferenceEnv,
    ControlPreferenceParallelEnv,
    LearnedRewardWrapper,
    PreferenceFeedback,
    aec_env,
    register_mujoco_envs,
)
from prefgym.errors import InvalidActionError
from prefgym.teachers import SyntheticTeacher

HAS_MUJOCO = importlib.util.find_spec("mujoco") is not None
requires_mujoco = pytest.mark.skipif(not HAS_MUJOCO, reason="needs mujoco (pip install 'prefgym[mujoco]')")
CHEAP = ["prefgym/PendulumPreference-v0",
         pytest.param("prefgym/InvertedPendulumPreference-v0", marks=requires_mujoco)]
# warnings the checkers raise for every continuous-control task, not for our envs
BENIGN = ("is different from the unwrapped version", "symmetric and normalized", "infinity",
          "Observation is not a NumPy array")


def checked(fn, *args, **kwargs):
    gc.collect()  # an earlier test's unclosed file would warn here when collected
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fn(*args, **kwargs)
    msgs = [str(w.message) for w in record if not any(b in str(w.message) for b in BENIGN)]
    assert not msgs, msgs


@pytest.fixture(scope="module")
def factories():
    return register_mujoco_envs()


# ------------------------------------------------------------- registration and checkers
def test_registration_is_idempotent_and_covers_the_tasks(factories):
    again = register_mujoco_envs()
    assert set(again) == set(factories) == set(CONTROL_TASKS)
    for name in ("Hopper", "HalfCheetah", "Walker2d", "InvertedPendulum", "Swimmer", "Pendulum"):
        assert f"prefgym/{name}Preference-v0" in gymnasium.registry
    assert CONTROL_TASKS["prefgym/HopperPreference-v0"] == "Hopper-v5"


@pytest.mark.parametrize("reward_mode", ["expected", "sample"])
@pytest.mark.parametrize("env_id", CHEAP)
def test_single_agent_view_passes_gymnasium_and_sb3_checkers(env_id, reward_mode):
    env = gymnasium.make(env_id, reward_mode=reward_mode, segment_length=5, horizon=40)
    # no OpenGL on CI: rendering is exercised separately
    checked(gym_check_env, env.unwrapped, skip_render_check=True)
    checked(gym_check_env, env, skip_render_check=True)
    checked(sb3_check_env, env.unwrapped)
    assert env.observation_space == gymnasium.make(CONTROL_TASKS[env_id]).observation_space


@pytest.mark.parametrize("reward_mode", ["expected", "sample"])
@pytest.mark.parametrize("env_id", CHEAP)
def test_parallel_env_passes_pettingzoo_tests(factories, env_id, reward_mode):
    make = factories[env_id]
    checked(parallel_api_test, make(reward_mode=reward_mode, segment_length=5, horizon=60), num_cycles=200)
    checked(parallel_seed_test, lambda: make(reward_mode=reward_mode, segment_length=5, horizon=30))


@requires_mujoco
def test_aec_env_passes_pettingzoo_api_test():
    checked(api_test, aec_env(base_env_id="InvertedPendulum-v5", segment_length=5, horizon=30), num_cycles=50)


@requires_mujoco
@pytest.mark.parametrize("env_id", ["prefgym/HopperPreference-v0", "prefgym/HalfCheetahPreference-v0",
                                    "prefgym/Walker2dPreference-v0", "prefgym/SwimmerPreference-v0"])
def test_locomotion_ids_make_and_step(factories, env_id):
    env = gymnasium.make(env_id, horizon=20, segment_length=10)
    checked(gym_check_env, env.unwrapped, skip_render_check=True)
    par = factories[env_id](horizon=20, segment_length=10)
    obs, _ = par.reset(seed=0)
    assert np.array_equal(obs["player_0"], obs["player_1"])
    total = 0.0
    while par.agents:
        _, rew, *_ = par.step({a: par.action_space(a).sample() for a in par.agents})
        total += rew["player_0"] + rew["player_1"]
    assert total == pytest.approx(2.0)  # two segments, each worth 1 in total


# ------------------------------------------------------------- game rules
def test_players_start_together_and_segments_are_scored_by_true_return(factories):
    par = factories["prefgym/PendulumPreference-v0"](segment_length=5, horizon=30, teacher="oracle")
    obs, _ = par.reset(seed=3)
    assert np.array_equal(obs["player_0"], obs["player_1"])
    fast, slow = scripted_policy("Pendulum-v1"), (lambda o: np.array([0.0], np.float32))
    seg = np.zeros(2)
    wins = []
    for t in range(1, 31):
        obs, rew, term, trunc, info = par.step({"player_0": fast(obs["player_0"]),
                                                "player_1": slow(obs["player_1"])})
        seg += [info["player_0"]["true_reward"], info["player_1"]["true_reward"]]
        if t % 5 == 0:
            expected = 1.0 if seg[0] > seg[1] else 0.0 if seg[0] < seg[1] else 0.5
            assert rew["player_0"] == expected and rew["player_1"] == 1.0 - expected
            assert info["player_0"]["segment_returns"] == pytest.approx(tuple(seg))
            wins.append(expected)
            seg[:] = 0.0
        else:
            assert rew == {"player_0": 0.0, "player_1": 0.0}
    assert trunc["player_0"] and not term["player_0"] and par.agents == []
    with pytest.raises(InvalidActionError, match="reset"):
        par.step({"player_0": fast(obs["player_0"]), "player_1": slow(obs["player_1"])})


def test_expected_reward_is_the_teacher_probability(factories):
    teacher = SyntheticTeacher(temperature=3.0, eps_mistake=0.1)
    par = factories["prefgym/PendulumPreference-v0"](segment_length=4, horizon=8, teacher=teacher)
    obs, _ = par.reset(seed=0)
    r = np.zeros((2, 4))
    for t in range(4):
        obs, rew, _, _, info = par.step({"player_0": np.array([2.0], np.float32),
                                         "player_1": np.array([-2.0], np.float32)})
        r[:, t] = info["player_0"]["true_reward"], info["player_1"]["true_reward"]
    assert rew["player_0"] == pytest.approx(float(teacher.prob(r[0], r[1])))
    assert info["player_0"]["win_prob"] == pytest.approx(rew["player_0"])


@requires_mujoco
def test_a_fallen_player_is_absorbed_and_loses_later_segments(factories):
    par = factories["prefgym/InvertedPendulumPreference-v0"](segment_length=10, horizon=60, teacher="oracle")
    obs, _ = par.reset(seed=0)
    expert = scripted_policy("InvertedPendulum-v5")
    push = np.array([3.0], np.float32)  # falls within a few steps
    rewards, frozen = [], None
    while par.agents:
        obs, rew, term, trunc, info = par.step({"player_0": push, "player_1": expert(obs["player_1"])})
        if not info["player_0"]["alive"]:
            if frozen is None:
                frozen = obs["player_0"].copy()
                assert info["player_0"]["true_reward"] in (0.0, 1.0)
            else:
                assert np.array_equal(obs["player_0"], frozen) and info["player_0"]["true_reward"] == 0.0
        if info["player_0"].get("win_prob") is not None:
            rewards.append(rew["player_1"])
    assert frozen is not None and trunc["player_1"] and not term["player_1"]
    assert rewards == [1.0] * 6  # the survivor wins every segment, the first included


@requires_mujoco
def test_single_agent_settle_matches_the_parallel_game_and_forfeit_stops_early(factories):
    expert = scripted_policy("InvertedPendulum-v5")
    agent_policy = scripted_policy("InvertedPendulum-v5", noise=4.0, seed=1)
    kw = dict(segment_length=10, horizon=120, teacher="oracle")
    # the parallel game, with the same policies and seed
    par = factories["prefgym/InvertedPendulumPreference-v0"](**kw)
    agent_policy_p = scripted_policy("InvertedPendulum-v5", noise=4.0, seed=1)
    obs, _ = par.reset(seed=7)
    ret_par = 0.0
    while par.agents:
        obs, rew, *_ = par.step({"player_0": agent_policy_p(obs["player_0"]),
                                 "player_1": expert(obs["player_1"])})
        ret_par += rew["player_0"]
    env = ControlPreferenceEnv("InvertedPendulum-v5", opponent=expert, **kw)
    obs, _ = env.reset(seed=7)
    ret, steps, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, _ = env.step(agent_policy(obs))
        ret, steps, done = ret + r, steps + 1, term or trunc
    assert ret == pytest.approx(ret_par)
    assert steps < 120 and term  # the agent fell; the opponent was settled to the end
    env_f = ControlPreferenceEnv("InvertedPendulum-v5", opponent=expert, on_agent_done="forfeit", **kw)
    obs, _ = env_f.reset(seed=7)
    agent_policy = scripted_policy("InvertedPendulum-v5", noise=4.0, seed=1)
    ret_f, steps_f, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, _ = env_f.step(agent_policy(obs))
        ret_f, steps_f, done = ret_f + r, steps_f + 1, term or trunc
    assert steps_f == steps and ret_f <= ret + 1e-9


def test_opponents_and_validation():
    class Model:  # SB3-style
        def predict(self, obs, deterministic=True):
            return np.array([1.0], np.float32), None

    env = ControlPreferenceEnv("Pendulum-v1", opponent=Model(), segment_length=3, horizon=6)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0], np.float32))
    assert info["true_reward"] == info["opponent_true_reward"]  # same start, same action
    env.set_opponent(None)
    assert env.opponent is None
    with pytest.raises(TypeError):
        env.set_opponent(3)
    with pytest.raises(ValueError, match="reward_mode"):
        ControlPreferenceEnv("Pendulum-v1", reward_mode="mean")
    with pytest.raises(ValueError, match="on_agent_done"):
        ControlPreferenceEnv("Pendulum-v1", on_agent_done="later")
    with pytest.raises(ValueError, match="segment_length"):
        ControlPreferenceParallelEnv("Pendulum-v1", segment_length=0)
    with pytest.raises(InvalidActionError, match="reset"):
        ControlPreferenceEnv("Pendulum-v1").step(np.zeros(1, np.float32))
    par = ControlPreferenceParallelEnv("Pendulum-v1")
    par.reset(seed=0)
    with pytest.raises(ValueError, match="actions needed"):
        par.step({"player_0": np.zeros(1, np.float32)})


def test_sb3_trains_on_the_single_agent_view():
    torch = pytest.importorskip("torch")
    from stable_baselines3 import SAC

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env = gymnasium.make("prefgym/PendulumPreference-v0", segment_length=10, horizon=50)
        model = SAC("MlpPolicy", env, learning_starts=50, batch_size=32, buffer_size=1000,
                    policy_kwargs={"net_arch": [16]}, seed=0)
        model.learn(150)
        assert model.num_timesteps == 150
    finally:
        torch.set_num_threads(threads)


def test_rendering_puts_both_copies_side_by_side():
    pytest.importorskip("pygame")
    env = ControlPreferenceEnv("Pendulum-v1", render_mode="rgb_array", horizon=5)
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as exc:  # pragma: no cover - headless machines
        pytest.skip(f"no rendering here: {exc}")
    single = gymnasium.make("Pendulum-v1", render_mode="rgb_array")
    single.reset(seed=0)
    one = single.render()
    assert frame.shape == (one.shape[0], 2 * one.shape[1], 3)


# ------------------------------------------------------------- feedback wrapper
def test_preference_feedback_records_segments_and_answers_queries():
    env = PreferenceFeedback(gymnasium.make("Pendulum-v1", max_episode_steps=23), segment_length=5,
                             teacher="oracle", capacity=100, seed=0)
    checked(gym_check_env, env, skip_render_check=True)
    env.clear()
    obs, _ = env.reset(seed=1)
    seen_obs, seen_rew = [], []
    for _ in range(23):
        a = env.action_space.sample()
        seen_obs.append(obs)
        obs, r, term, trunc, _ = env.step(a)
        seen_rew.append(r)
    assert trunc and env.num_segments == 4  # 23 steps: four full segments, the 3-step tail dropped
    seg = env.segments()
    assert np.allclose(seg["observations"][1], np.asarray(seen_obs[5:10], np.float32))
    assert np.allclose(seg["rewards"].reshape(-1), seen_rew[:20])
    assert seg["mask"].all()
    returns = seg["rewards"].sum(1)
    y = env.query([0, 1, 2], [3, 3, 0])
    assert np.array_equal(y, (returns[[0, 1, 2]] > returns[[3, 3, 0]]).astype(float))
    assert env.num_queries == env.num_labels == 3
    pairs = env.sample_preferences(20)
    assert isinstance(pairs, PreferencePairs) and len(pairs) == 20
    assert pairs.env_id == "Pendulum-v1" and pairs.accuracy() == 1.0
    assert pairs.obs_a.shape == (20, 5, 3) and pairs.act_a.shape == (20, 5, 1)


def test_preference_feedback_partial_segments_capacity_and_skips():
    env = PreferenceFeedback(gymnasium.make("Pendulum-v1", max_episode_steps=7), segment_length=5,
                             keep_partial=True, capacity=3, teacher=SyntheticTeacher(skip_threshold=-1e9),
                             seed=0)
    for ep in range(2):
        env.reset(seed=ep)
        for _ in range(7):
            env.step(env.action_space.sample())
    # each episode: one full segment and a 2-step tail; capacity 3 keeps the newest three
    assert env.num_segments == 3
    assert env.segments()["mask"].sum(1).tolist() in ([5, 2, 2], [2, 5, 2], [2, 2, 5])
    assert len(env.sample_preferences(10)) == 10  # no return is below -1e9: nothing skipped
    skipper = PreferenceFeedback(gymnasium.make("Pendulum-v1", max_episode_steps=10), segment_length=5,
                                 teacher=SyntheticTeacher(skip_threshold=1e9), seed=0)
    skipper.reset(seed=0)
    for _ in range(10):
        skipper.step(skipper.action_space.sample())
    assert len(skipper.sample_preferences(10)) == 0 and skipper.num_labels == 0
    assert np.isnan(skipper.query([0], [1])).all()
    with pytest.raises(IndexError):
        skipper.query([5], [0])
    with pytest.raises(ValueError, match="at least 2"):
        PreferenceFeedback(gymnasium.make("Pendulum-v1")).sample_queries(1)


def test_learned_reward_wrapper_replaces_the_reward():
    def reward_fn(obs, act):
        return -np.sum(obs**2, axis=-1) + act[:, 0]

    env = LearnedRewardWrapper(gymnasium.make("Pendulum-v1"), reward_fn)
    checked(gym_check_env, env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    a = np.array([0.5], np.float32)
    _, r, _, _, info = env.step(a)
    assert r == pytest.approx(-np.sum(obs**2) + 0.5, rel=1e-6)
    assert "true_reward" in info and info["true_reward"] != r
