"""Every registered ``prefgym/`` id in the standard SB3, Gymnasium and PettingZoo setups.

For each id: ``make_vec_env`` with ``SubprocVecEnv`` (2 envs) and PPO (discrete
actions) or SAC (continuous) learning 256 steps with ``CheckpointCallback`` and
``EvalCallback``; ``DummyVecEnv``; ``gymnasium.make_vec`` (sync and async);
Gymnasium's and SB3's ``check_env``; ``rgb_array`` frames; PettingZoo's
``parallel_api_test`` / ``api_test`` on ``make_parallel`` / ``make_aec``.

Documented exception: SB3 cannot take ``Text`` spaces, so the text ids
(Dialogue, Reasoning) go through :class:`~prefgym.envs.TokenIdView` for SB3
(Gymnasium's checker runs on both faces). The MuJoCo ids run with a short
``horizon`` so that episodes end within the tiny budgets.
"""

from __future__ import annotations

import os
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from pettingzoo.test import api_test, parallel_api_test
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import prefgym.envs  # noqa: F401  (registers the ids)
from prefgym.envs import PreferenceFeedback, TokenIdView, make_aec, make_parallel
from prefgym.envs.headless_gl import ensure_mujoco_gl
from prefgym.envs.mujoco import CONTROL_TASKS

IDS = sorted(k for k in gymnasium.registry if k.startswith("prefgym/"))
TEXT_IDS = {"prefgym/Dialogue-v0", "prefgym/Reasoning-v0"}
MUJOCO_IDS = set(CONTROL_TASKS) - {"prefgym/PendulumPreference-v0"}
# short games for the budgets below; the spec's TimeLimit follows them (SyncTimeLimit)
FAST_KWARGS = {env_id: {"horizon": 24, "segment_length": 8} for env_id in CONTROL_TASKS}
for _id in MUJOCO_IDS:  # small frames: the checkers render every mode (software EGL here)
    FAST_KWARGS[_id]["base_env_kwargs"] = {"width": 64, "height": 64}
FAST_KWARGS["prefgym/RPS-v0"] = {"rounds": 3}


def kwargs_of(env_id: str) -> dict:
    return dict(FAST_KWARGS.get(env_id, {}))


# SB3 samples a MultiDiscrete action one Categorical per dimension: 16 characters keep PPO fast
VIEW_KWARGS = {"obs_length": 512, "action_length": 16}


def vec_kwargs(env_id: str) -> dict:
    """make_vec_env's arguments for one id: short games, and the token-id view for the text ids."""
    if env_id in TEXT_IDS:
        return {"env_kwargs": kwargs_of(env_id), "wrapper_class": TokenIdView, "wrapper_kwargs": VIEW_KWARGS}
    return {"env_kwargs": kwargs_of(env_id)}


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_every_id_is_covered():
    assert len(IDS) == 14 and TEXT_IDS <= set(IDS) and set(CONTROL_TASKS) <= set(IDS)


# ------------------------------------------------------------------ SB3: learn with callbacks
@pytest.mark.parametrize("env_id", IDS)
def test_subproc_vec_env_learns_with_checkpoint_and_eval_callbacks(env_id, tmp_path, one_thread):
    eval_env = make_vec_env(env_id, n_envs=1, seed=1, **vec_kwargs(env_id))  # first: workers fork warm
    venv = make_vec_env(env_id, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                        vec_env_kwargs={"start_method": "fork"}, **vec_kwargs(env_id))
    try:
        net = {"net_arch": [16]}
        if isinstance(venv.action_space, gymnasium.spaces.Box):
            model = SAC("MlpPolicy", venv, learning_starts=64, batch_size=32, buffer_size=512,
                        policy_kwargs=net, seed=0, device="cpu")
        else:
            model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=net,
                        seed=0, device="cpu")
        ckpt = CheckpointCallback(save_freq=64, save_path=str(tmp_path / "ckpt"), name_prefix="m")
        evalcb = EvalCallback(eval_env, eval_freq=64, n_eval_episodes=1, log_path=str(tmp_path / "eval"),
                              best_model_save_path=str(tmp_path / "best"), verbose=0)
        quiet(model.learn, 256, callback=CallbackList([ckpt, evalcb]))
    finally:
        venv.close()
        eval_env.close()
    assert model.num_timesteps == 256
    # 128 vec steps: checkpoints and evaluations at calls 64 and 128
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["m_128_steps.zip", "m_256_steps.zip"]
    assert (tmp_path / "best" / "best_model.zip").is_file()
    with np.load(tmp_path / "eval" / "evaluations.npz") as ev:
        assert ev["timesteps"].tolist() == [128, 256]
        results, lengths = ev["results"], ev["ep_lengths"]
    horizon = gymnasium.make(env_id, **kwargs_of(env_id)).unwrapped.horizon
    assert np.all((lengths >= 1) & (lengths <= horizon))
    # every game pays a preference in [0, 1] per step (ties added at an early end)
    assert np.all((results >= 0.0) & (results <= horizon + 1e-9))


def _known_ids(queue) -> None:
    queue.put(sorted(k for k in gymnasium.registry if k.startswith("prefgym/")))


def test_forkserver_workers_know_the_ids():
    # SB3's SubprocVecEnv starts workers by forkserver where it can; they must know the ids
    # (SB3 itself in the worker would cost a torch import here: the registry is what matters)
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    queue = ctx.Queue()
    worker = ctx.Process(target=_known_ids, args=(queue,))
    worker.start()
    assert queue.get(timeout=60) == IDS
    worker.join(timeout=30)


# ------------------------------------------------------------------ SB3 / Gymnasium vector envs
@pytest.mark.parametrize("env_id", IDS)
def test_dummy_vec_env_steps_and_renders(env_id):
    venv = make_vec_env(env_id, n_envs=2, seed=0, vec_env_cls=DummyVecEnv, **vec_kwargs(env_id))
    obs = venv.reset()
    assert obs.shape[0] == 2
    for _ in range(3):
        obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
        assert rewards.shape == (2,) and np.all((rewards >= 0) & (rewards <= 1e6))
    if env_id in MUJOCO_IDS:
        venv.close()
        return  # MuJoCo frames are checked once below (two 480 x 480 frames cost 1 s here)
    frames = quiet(venv.get_images)  # make_vec_env's default render_mode is "rgb_array"
    assert len(frames) == 2 and all(f.ndim == 3 and f.shape[2] == 3 and f.dtype == np.uint8 for f in frames)
    venv.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_make_vec(env_id, mode):
    vec = gymnasium.make_vec(env_id, num_envs=2, vectorization_mode=mode, **kwargs_of(env_id))
    try:
        vec.action_space.seed(0)
        obs, infos = vec.reset(seed=0)
        assert len(obs) == 2
        horizon = gymnasium.make(env_id, **kwargs_of(env_id)).unwrapped.horizon
        done = np.zeros(2, bool)
        for _ in range(horizon if horizon <= 24 else 3):
            actions = vec.action_space.sample()
            if env_id in TEXT_IDS:
                actions = ("Answer: 1", "I think so.")
            obs, rewards, terminated, truncated, infos = vec.step(actions)
            done |= terminated | truncated
        assert rewards.shape == (2,)
        if horizon <= 24:
            assert done.all()  # every episode ends by the horizon of the spec
    finally:
        vec.close()


# ------------------------------------------------------------------ checkers
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_sb3_checkers(env_id):
    env = gymnasium.make(env_id, **kwargs_of(env_id))
    quiet(gym_check_env, env.unwrapped)  # includes the render check of every render mode
    if env_id in TEXT_IDS:
        with pytest.raises(AssertionError, match="numpy array"):  # SB3 has no Text spaces
            quiet(sb3_check_env, env.unwrapped)
        view = TokenIdView(env)
        quiet(gym_check_env, view, skip_render_check=True)
        quiet(sb3_check_env, view)
    else:
        quiet(sb3_check_env, env.unwrapped)
    env.close()


# ------------------------------------------------------------------ specs and horizons
@pytest.mark.parametrize("env_id", IDS)
def test_spec_max_episode_steps_is_the_horizon(env_id):
    spec = gymnasium.registry[env_id]
    env = gymnasium.make(env_id)
    assert spec.max_episode_steps == env.unwrapped.horizon == env.spec.max_episode_steps >= 1
    short = gymnasium.make(env_id, **kwargs_of(env_id))
    assert short.spec.max_episode_steps == short.unwrapped.horizon


def test_time_limit_follows_the_game_not_the_default():
    env = gymnasium.make("prefgym/RPS-v0", rounds=3)  # registered default: 1 round
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (True, True)]
    kept = gymnasium.make("prefgym/RPS-v0", rounds=3, max_episode_steps=2)  # the caller's choice stays
    kept.reset(seed=0)
    assert kept.step(0)[2:4] == (False, False) and kept.step(0)[2:4] == (False, True)
    grid = gymnasium.make("prefgym/Gridworld-v0", game=prefgym.games.cyclic_goals_gridworld(horizon=11))
    assert grid.spec.max_episode_steps == 11


# ------------------------------------------------------------------ rendering
@pytest.mark.parametrize("env_id", sorted(set(IDS) - MUJOCO_IDS))
def test_rgb_array_frames_have_one_shape_and_show_the_play(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array", **kwargs_of(env_id))
    env.action_space.seed(0)
    env.reset(seed=0)
    frames = [env.render()]
    for _ in range(3):
        action = "Answer: 1" if env_id in TEXT_IDS else env.action_space.sample()
        done = env.step(action)[2]
        frames.append(env.render())
        if done:
            break
    first = frames[0]
    assert first.ndim == 3 and first.shape[2] == 3 and first.dtype == np.uint8 and min(first.shape[:2]) >= 48
    assert all(f.shape == first.shape and f.dtype == np.uint8 for f in frames)
    assert frames[-1].std() > 5  # a picture, not a blank
    # the picture shows the play (Pendulum: the pendulums barely move in 3 steps; in the random
    # gridworld the players may stay where they are)
    if env_id not in ("prefgym/PendulumPreference-v0", "prefgym/GridworldRandom-v0"):
        assert any(not np.array_equal(first, f) for f in frames[1:])  # the play is drawn


def test_mujoco_rgb_array_is_headless_and_side_by_side():
    backend = ensure_mujoco_gl()
    assert backend in (None, "egl", "osmesa", "glfw") and (backend or os.environ.get("DISPLAY"))
    env = gymnasium.make("prefgym/InvertedPendulumPreference-v0", render_mode="rgb_array", horizon=5)
    env.reset(seed=0)
    frame = env.render()
    single = gymnasium.make("InvertedPendulum-v5", render_mode="rgb_array")
    single.reset(seed=0)
    one = single.render()
    assert frame.dtype == np.uint8 and frame.shape == (one.shape[0], 2 * one.shape[1], 3) and frame.std() > 5
    env.close()
    single.close()
    wrapped = PreferenceFeedback(gymnasium.make("InvertedPendulum-v5", render_mode="rgb_array", width=32,
                                                height=32), segment_length=5)
    wrapped.reset(seed=0)
    assert wrapped.render().shape == (32, 32, 3)
    wrapped.close()


def test_headless_gl_keeps_a_users_choice(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert ensure_mujoco_gl() == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    assert ensure_mujoco_gl() is None and "MUJOCO_GL" not in os.environ


def test_headless_gl_falls_back_and_says_what_failed(monkeypatch):
    from prefgym.envs import headless_gl
    from prefgym.envs.mujoco import _ensure_gl

    tried = []

    def probe(backend, timeout):
        tried.append(backend)
        return None if backend == "osmesa" else "no EGL device"

    for var in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(headless_gl, "_failures", {})
    monkeypatch.setattr(headless_gl, "_probe", probe)
    monkeypatch.delitem(sys.modules, "OpenGL", raising=False)
    assert headless_gl.ensure_mujoco_gl() == "osmesa" and tried == ["egl", "osmesa"]
    assert os.environ["MUJOCO_GL"] == os.environ["PYOPENGL_PLATFORM"] == "osmesa"
    assert headless_gl.headless_gl_failures() == {"egl": "no EGL device"}
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(headless_gl, "_probe", lambda backend, timeout: f"no {backend}")
    monkeypatch.setattr(headless_gl, "_failures", {})
    with pytest.raises(RuntimeError, match="no headless backend works .egl: no egl; osmesa: no osmesa"):
        _ensure_gl()
    assert "MUJOCO_GL" not in os.environ


# ------------------------------------------------------------------ PettingZoo
@pytest.mark.parametrize("env_id", IDS)
def test_pettingzoo_parallel_and_aec_api_tests(env_id):
    kw = kwargs_of(env_id)
    quiet(parallel_api_test, make_parallel(env_id, **kw), num_cycles=8)
    quiet(api_test, make_aec(env_id, **kw), num_cycles=8)


# ------------------------------------------------------------------ the token-id view
def test_token_id_view_round_trips_text():
    view = TokenIdView(gymnasium.make("prefgym/Reasoning-v0"), obs_length=64, action_length=32)
    obs, _ = view.reset(seed=0)
    text = view.env.unwrapped.core.observation(view.env.unwrapped.core.task, [], False)
    assert obs.shape == (64,) and obs.dtype == np.int64
    tail = "".join(view.obs_chars[i - 1] for i in obs if i)
    assert tail == text[-64:]
    action = view.encode_action("Answer: 7")
    assert view.decode_action(action) == "Answer: 7" and action[9:].sum() == 0
    _, _, _, _, info = view.step(action)
    assert info["text_action"] == "Answer: 7"
    with pytest.raises(ValueError, match="action must be 32 integer ids"):
        view.step(np.full(32, 999))
    with pytest.raises(TypeError, match="Text observation and action"):
        TokenIdView(gymnasium.make("prefgym/RPS-v0"))
