"""Preference faces of continuous-control tasks (MuJoCo and classic control).

Three pieces, all for any Gymnasium task whose true reward scores behaviour:

- :class:`PreferenceFeedback`: a wrapper that records trajectory segments of a
  chosen length as the agent acts and answers pairwise queries about them
  from a synthetic teacher over the true return (B-Pref's noisy teachers,
  :mod:`prefgym.teachers`). Rewards and observations pass through unchanged.
- :class:`ControlPreferenceParallelEnv`: the two-player game (PettingZoo
  parallel API). ``"player_0"`` and ``"player_1"`` run their own copies of the
  task from the same start state; every ``segment_length`` steps the teacher
  compares their segments by true reward, paying ``player_0`` the preference
  ``P(segment_0 > segment_1)`` and ``player_1`` its complement (001's Markov
  preference game, with the teacher as the preference oracle).
- :class:`ControlPreferenceEnv`: the single-agent view: player 0 against a
  fixed opponent policy, reward the preference, so SB3 trains on it unchanged.

Registered ids (:data:`CONTROL_TASKS`): ``prefgym/HopperPreference-v0``,
``HalfCheetahPreference``, ``Walker2dPreference``, ``InvertedPendulumPreference``,
``SwimmerPreference`` (MuJoCo, need ``mujoco``) and ``PendulumPreference``
(classic control, no MuJoCo). ``gymnasium.make(id)`` gives the single-agent
view; ``make_parallel(id)`` the two-player game.

Game rules
----------
- Start: both copies are reset with one seed drawn from the game's generator,
  so tasks whose reset is a function of the seed (all Gymnasium tasks) start
  both players in the same state.
- A copy that *terminates* (e.g. Hopper falls) sits in an absorbing state with
  zero true reward; its actions are ignored and its observation is frozen.
  The game ends when both copies have terminated (``terminated``) or after
  ``horizon`` steps (``truncated``; default: the task's time limit).
- Scoring: at every ``segment_length``-th step and at the end of the game,
  the teacher compares the two segments' true per-step rewards.
  ``reward_mode="expected"`` pays ``teacher.prob`` (the expected label: BT with
  temperature, mistakes mixed in), ``"sample"`` one teacher label. A skipped
  query pays ``1/2`` to each (no preference is a tie). Rewards are ``0`` between
  scoring steps, so each player's return is its number of segment wins.
- ``info``: ``true_reward`` (the task reward of the step, 0 when absorbing),
  ``alive``, ``t``, and on scoring steps ``win_prob`` (the expected label, own
  view) and ``segment_returns`` (own, other).

Single-agent view: when the agent's copy terminates, ``on_agent_done="settle"``
(default) runs the opponent on to the end of the game and pays every remaining
comparison in the final reward, so episode returns equal ``player_0``'s return
in the parallel game; ``"forfeit"`` scores only the current segment (cheaper).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec

from prefgym.envs.two_player import TwoPlayerParallelEnv
from prefgym.errors import InvalidActionError
from prefgym.teachers import SyntheticTeacher, as_teacher
from prefgym.validation import (
    STEP_AFTER_END,
    STEP_BEFORE_RESET,
    check_action,
    check_parallel_actions,
    check_seed,
)

__all__ = [
    "CONTROL_TASKS",
    "ControlPreferenceEnv",
    "ControlPreferenceParallelEnv",
    "LearnedRewardWrapper",
    "PreferenceFeedback",
    "aec_env",
    "parallel_env",
    "register_mujoco_envs",
]

#: registered id -> the Gymnasium task both players run
CONTROL_TASKS: dict[str, str] = {
    "prefgym/HopperPreference-v0": "Hopper-v5",
    "prefgym/HalfCheetahPreference-v0": "HalfCheetah-v5",
    "prefgym/Walker2dPreference-v0": "Walker2d-v5",
    "prefgym/InvertedPendulumPreference-v0": "InvertedPendulum-v5",
    "prefgym/SwimmerPreference-v0": "Swimmer-v5",
    "prefgym/PendulumPreference-v0": "Pendulum-v1",
}
ENTRY_POINT = "prefgym.envs.mujoco:ControlPreferenceEnv"
REWARD_MODES = ("expected", "sample")
DEFAULT_SEGMENT_LENGTH = 50  # B-Pref's MuJoCo segment length
DEFAULT_GAME_TEACHER = {"temperature": 1.0}  # B-Pref's stochastic teacher (beta = 1)

Policy = Callable[[np.ndarray], Any]


# ------------------------------------------------------------------ helpers
def _flat_dim(space: spaces.Space) -> int:
    return int(spaces.flatdim(space))


def _flatten(space: spaces.Space, x) -> np.ndarray:
    if isinstance(space, spaces.Box):
        return np.asarray(x, dtype=np.float32).reshape(-1)
    return np.asarray(spaces.flatten(space, x), dtype=np.float32)


def as_policy(policy, action_space: spaces.Space, deterministic: bool = True) -> Policy | None:
    """A callable ``obs -> action`` from a callable, an object with SB3's ``predict``, or None (random)."""
    if policy is None:
        return None
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return policy
    raise TypeError(f"a policy must be callable obs -> action or have .predict(); "
                    f"got {type(policy).__name__}")


def _check_mode(reward_mode: str) -> None:
    if reward_mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}; got {reward_mode!r}")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


# ------------------------------------------------------------------ feedback wrapper
class _GuardedWrapper(gymnasium.Wrapper):
    """A wrapper that remembers the last observation and refuses a step before reset,
    after the episode ended, or with an action outside the action space."""

    _last_obs: Any = None
    _ended: bool = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=check_seed(seed), options=options)
        self._last_obs = obs
        self._ended = False
        return obs, info

    def render(self):
        """The wrapped env's frame; a MuJoCo env gets a headless OpenGL backend first if needed."""
        _ensure_gl_for(self.env)
        return self.env.render()

    def _check_step(self, action) -> None:
        if self._last_obs is None:
            raise InvalidActionError(STEP_BEFORE_RESET)
        if self._ended:
            raise InvalidActionError(STEP_AFTER_END)
        check_action(action, self.action_space)


class PreferenceFeedback(_GuardedWrapper, gymnasium.utils.RecordConstructorArgs):
    """Record segments of ``segment_length`` steps and answer pairwise queries about them.

    Parameters
    ----------
    env
        Any Gymnasium env; its reward is the true reward the teacher sees.
    segment_length
        Steps per segment. Each episode is cut into consecutive segments; an
        episode's last, shorter piece is kept (padded, ``mask`` False) only if
        ``keep_partial``.
    teacher
        A :class:`~prefgym.teachers.SyntheticTeacher`, a B-Pref name (``"oracle"``,
        ``"stochastic"``, ``"myopic"``, ``"mistake"``, ``"skip"``, ``"equal"``), a dict of
        constructor arguments, or None (the oracle). Skip / equal thresholds by name
        are fractions of the mean true segment return so far.
    capacity
        Segments kept (the oldest are overwritten).
    seed
        Seed of the query sampler and of the teacher's draws.

    Notes
    -----
    A segment holds the observations the actions were taken in (``s_t``), the
    actions, the true rewards and a mask; observations and actions are
    flattened (``gymnasium.spaces.flatten``), so any spaces work.
    """

    def __init__(
        self,
        env: gymnasium.Env,
        segment_length: int = DEFAULT_SEGMENT_LENGTH,
        teacher: SyntheticTeacher | str | dict | None = None,
        capacity: int = 10_000,
        keep_partial: bool = False,
        seed: int | None = None,
    ):
        gymnasium.utils.RecordConstructorArgs.__init__(
            self, segment_length=segment_length, teacher=teacher, capacity=capacity,
            keep_partial=keep_partial, seed=seed)
        gymnasium.Wrapper.__init__(self, env)
        self.segment_length = L = _check_positive_int(segment_length, "segment_length")
        self.capacity = _check_positive_int(capacity, "capacity")
        self.keep_partial = keep_partial
        self._teacher_spec = teacher
        self.rng = np.random.default_rng(seed)
        do, da = _flat_dim(env.observation_space), _flat_dim(env.action_space)
        self._obs = np.zeros((self.capacity, L, do), np.float32)
        self._act = np.zeros((self.capacity, L, da), np.float32)
        self._rew = np.zeros((self.capacity, L), np.float64)
        self._mask = np.zeros((self.capacity, L), bool)
        self._n = 0  # segments stored (<= capacity)
        self._pos = 0  # next slot
        self._cur_obs = np.zeros((L, do), np.float32)
        self._cur_act = np.zeros((L, da), np.float32)
        self._cur_rew = np.zeros(L, np.float64)
        self._k = 0  # steps in the current segment
        self._last_obs = None
        self.num_queries = 0  # queries asked
        self.num_labels = 0  # queries answered (not skipped)

    # -------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._k = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self._check_step(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        k = self._k
        self._cur_obs[k] = _flatten(self.observation_space, self._last_obs)
        self._cur_act[k] = _flatten(self.action_space, action)
        self._cur_rew[k] = float(reward)
        self._k = k + 1
        if self._k == self.segment_length:
            self._store(self._k)
        elif (terminated or truncated) and self.keep_partial and self._k > 0:
            self._store(self._k)
        if terminated or truncated:
            self._k = 0
            self._ended = True
        self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def _store(self, k: int) -> None:
        i = self._pos
        self._obs[i, :k], self._act[i, :k], self._rew[i, :k] = self._cur_obs[:k], self._cur_act[:k], \
            self._cur_rew[:k]
        self._obs[i, k:], self._act[i, k:], self._rew[i, k:] = 0.0, 0.0, 0.0
        self._mask[i] = np.arange(self.segment_length) < k
        self._pos = (i + 1) % self.capacity
        self._n = min(self._n + 1, self.capacity)
        self._k = 0

    # -------------------------------------------------------------- segments and queries
    @property
    def num_segments(self) -> int:
        """Segments stored (at most ``capacity``)."""
        return self._n

    def segments(self) -> dict[str, np.ndarray]:
        """Copies of the stored segments.

        Keys ``observations (n, L, obs_dim)``, ``actions (n, L, act_dim)``, ``rewards``, ``mask`` ``(n, L)``.
        """
        n = self._n
        return {"observations": self._obs[:n].copy(), "actions": self._act[:n].copy(),
                "rewards": self._rew[:n].copy(), "mask": self._mask[:n].copy()}

    def clear(self) -> None:
        """Forget every stored segment (the query counters are kept)."""
        self._n = self._pos = 0

    @property
    def teacher(self) -> SyntheticTeacher:
        """The teacher; named skip / equal teachers use the mean stored segment return as margin."""
        if isinstance(self._teacher_spec, SyntheticTeacher):
            return self._teacher_spec
        margin = float(np.mean((self._rew[: self._n] * self._mask[: self._n]).sum(-1))) if self._n else None
        return as_teacher(self._teacher_spec, default="oracle", margin=margin)

    def sample_queries(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs of distinct stored segment indices, uniformly at random."""
        if self._n < 2:
            raise ValueError(f"need at least 2 stored segments to ask queries; have {self._n}")
        a = self.rng.integers(self._n, size=n)
        b = (a + self.rng.integers(1, self._n, size=n)) % self._n
        return a, b

    def query(self, idx_a, idx_b) -> np.ndarray:
        """The teacher's labels ``P(a > b)`` for stored segments ``idx_a`` vs ``idx_b`` (nan: skipped)."""
        idx_a, idx_b = np.asarray(idx_a), np.asarray(idx_b)
        if np.any((idx_a >= self._n) | (idx_b >= self._n) | (idx_a < 0) | (idx_b < 0)):
            raise IndexError(f"segment index out of range [0, {self._n})")
        y = self.teacher.label(self._rew[idx_a], self._rew[idx_b], self.rng,
                               self._mask[idx_a], self._mask[idx_b])
        self.num_queries += int(y.size)
        self.num_labels += int(np.count_nonzero(~np.isnan(y)))
        return y

    def sample_preferences(self, n: int, drop_skipped: bool = True):
        """Ask ``n`` random queries and return them as :class:`~prefgym.data.control.PreferencePairs`.

        Skipped queries are dropped (so fewer than ``n`` pairs may come back) unless
        ``drop_skipped`` is False.
        """
        from prefgym.data.control import PreferencePairs

        a, b = self.sample_queries(n)
        y = self.query(a, b)
        keep = ~np.isnan(y) if drop_skipped else np.ones(len(y), bool)
        a, b = a[keep], b[keep]
        spec = getattr(self.env, "spec", None)
        return PreferencePairs(
            obs_a=self._obs[a].copy(), act_a=self._act[a].copy(), mask_a=self._mask[a].copy(),
            obs_b=self._obs[b].copy(), act_b=self._act[b].copy(), mask_b=self._mask[b].copy(),
            labels=y[keep], returns_a=(self._rew[a] * self._mask[a]).sum(-1),
            returns_b=(self._rew[b] * self._mask[b]).sum(-1),
            env_id=spec.id if spec is not None else None,
            info={"teacher": self.teacher.config(), "segment_length": self.segment_length,
                  "source": "PreferenceFeedback"},
        )


# ------------------------------------------------------------------ learned reward
class LearnedRewardWrapper(_GuardedWrapper, gymnasium.utils.RecordConstructorArgs):
    """Replace the task reward by a learned ``R(s, a)``; the task reward goes to ``info["true_reward"]``.

    Parameters
    ----------
    env
        Any Gymnasium env.
    reward_fn
        ``reward_fn(observations (B, ...), actions (B, ...)) -> (B,)`` in the env's
        units (e.g. :meth:`prefgym.agents.aihf.AIHF.reward`), or an object with such a
        ``reward`` method. Called once per step with ``B = 1``.

    Notes
    -----
    :class:`~prefgym.agents.aihf.AIHF` does not step through this wrapper: it
    relabels SAC's replay samples with the current reward net (one batched call
    per gradient step), which is cheaper and keeps old transitions current.
    """

    def __init__(self, env: gymnasium.Env, reward_fn):
        gymnasium.utils.RecordConstructorArgs.__init__(self, reward_fn=reward_fn)
        gymnasium.Wrapper.__init__(self, env)
        fn = getattr(reward_fn, "reward", reward_fn)
        if not callable(fn):
            raise TypeError("reward_fn must be callable (observations, actions) -> rewards")
        self.reward_fn = fn
        self._last_obs = None


    def step(self, action):
        self._check_step(action)
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        self._ended = bool(terminated or truncated)
        r = np.asarray(self.reward_fn(np.asarray(self._last_obs)[None], np.asarray(action)[None]))
        info = {**info, "true_reward": float(true_reward)}
        self._last_obs = obs
        return obs, float(r.reshape(-1)[0]), terminated, truncated, info


def _ensure_gl_for(env: gymnasium.Env) -> None:
    """:func:`_ensure_gl` if ``env`` is a MuJoCo env about to draw an ``rgb_array`` frame."""
    if env.render_mode in ("rgb_array", "rgb_array_list", "depth_array") and hasattr(
            env.unwrapped, "mujoco_renderer"):
        _ensure_gl()


def _ensure_gl() -> None:
    """Choose a headless OpenGL backend for MuJoCo if needed; a clear error if none works."""
    from prefgym.envs.headless_gl import ensure_mujoco_gl, has_display, headless_gl_failures

    if ensure_mujoco_gl() is None and not has_display():
        failures = "; ".join(f"{k}: {v}" for k, v in headless_gl_failures().items())
        raise RuntimeError(
            "MuJoCo rgb_array rendering needs OpenGL and this machine has no display; no headless backend "
            f"works ({failures}). Install EGL (libegl1) or OSMesa (libosmesa6) drivers, or set MUJOCO_GL")


# ------------------------------------------------------------------ the game
class _Duel:
    """Two copies of a task stepped in lockstep and scored segment by segment."""

    def __init__(self, base_env_id: str, base_env_kwargs: dict | None, horizon: int | None,
                 segment_length: int, teacher, reward_mode: str, render_mode: str | None):
        _check_mode(reward_mode)
        kwargs = dict(base_env_kwargs or {})
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        spec = gymnasium.spec(base_env_id)
        if horizon is None:
            horizon = spec.max_episode_steps
            if horizon is None:
                raise ValueError(f"{base_env_id} has no time limit; pass horizon=")
        self.horizon = _check_positive_int(horizon, "horizon")
        self.segment_length = _check_positive_int(segment_length, "segment_length")
        self.teacher = as_teacher(DEFAULT_GAME_TEACHER if teacher is None else teacher)
        self.reward_mode = reward_mode
        self.base_env_id = base_env_id
        self.envs = [gymnasium.make(base_env_id, max_episode_steps=self.horizon, disable_env_checker=True,
                                    **kwargs) for _ in range(2)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self._seg = np.zeros((2, self.segment_length))
        self.obs: list[Any] = [None, None]
        self.alive = [False, False]
        self.t = 0
        self._k = 0
        self._gl_ready = False

    def reset(self, rng: np.random.Generator) -> tuple[Any, Any]:
        seed = int(rng.integers(2**31 - 1))
        self.obs = [env.reset(seed=seed)[0] for env in self.envs]
        self.alive = [True, True]
        self.t = self._k = 0
        return self.obs[0], self.obs[1]

    def score(self, rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
        """``(reward to copy 0, expected label, segment returns)`` of the current segment."""
        seg = self._seg[:, : self._k]
        p = float(self.teacher.prob(seg[0], seg[1]))
        if self.reward_mode == "expected":
            y = p
        else:
            y = float(self.teacher.label(seg[0], seg[1], rng))
        p = 0.5 if np.isnan(p) else p
        y = 0.5 if np.isnan(y) else y
        returns = seg.sum(-1)
        self._k = 0
        return y, p, returns

    def step(self, actions: tuple[Any, Any], rng: np.random.Generator):
        """Step the live copies.

        Returns ``(true rewards, scored, y0, p0, returns, terminated, truncated)``.
        """
        true_r = [0.0, 0.0]
        for i in range(2):
            if self.alive[i]:
                check_action(actions[i], self.action_space, f"player_{i} action")
        for i in range(2):
            if self.alive[i]:
                obs, r, term, _, _ = self.envs[i].step(actions[i])
                self.obs[i], true_r[i] = obs, float(r)
                if term:
                    self.alive[i] = False
        self._seg[:, self._k] = true_r
        self._k += 1
        self.t += 1
        terminated = not any(self.alive)
        truncated = not terminated and self.t >= self.horizon
        scored = self._k == self.segment_length or terminated or truncated
        y = p = None
        returns = None
        if scored:
            y, p, returns = self.score(rng)
        return true_r, scored, y, p, returns, terminated, truncated

    def render(self):
        if not self._gl_ready:
            _ensure_gl_for(self.envs[0])
            self._gl_ready = True
        frames = [env.render() for env in self.envs]
        if any(f is None for f in frames):
            return None
        h = max(f.shape[0] for f in frames)
        frames = [np.pad(f, ((0, h - f.shape[0]), (0, 0), (0, 0))) for f in frames]
        return np.concatenate(frames, axis=1)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _info(duel: _Duel, i: int, true_r, scored, p, returns) -> dict[str, Any]:
    info: dict[str, Any] = {"true_reward": true_r[i], "alive": duel.alive[i], "t": duel.t}
    if scored:
        info["win_prob"] = p if i == 0 else 1.0 - p
        info["segment_returns"] = (float(returns[i]), float(returns[1 - i]))
    return info


class ControlPreferenceParallelEnv(TwoPlayerParallelEnv):
    """Two players, each in its own copy of a control task, scored by segment preference.

    Parameters
    ----------
    base_env_id
        The Gymnasium task, e.g. ``"Hopper-v5"``.
    base_env_kwargs
        Keyword arguments for ``gymnasium.make(base_env_id, ...)``.
    segment_length
        Steps per compared segment.
    teacher
        The preference oracle: a :class:`~prefgym.teachers.SyntheticTeacher`, a B-Pref
        name, a dict, or None (Bradley-Terry with temperature 1, B-Pref's stochastic teacher).
    reward_mode
        ``"expected"`` (the expected label) or ``"sample"`` (one label).
    horizon
        Game length; default the task's time limit.
    render_mode
        None or ``"rgb_array"`` (both copies side by side).

    Notes
    -----
    See the module docstring for the rules. Both players stay in ``agents``
    until the game ends; a terminated player's actions are ignored.
    """

    metadata = {"name": "prefgym_control_preference_v0", "render_modes": ["rgb_array"],
                "is_parallelizable": True}

    def __init__(
        self,
        base_env_id: str = "InvertedPendulum-v5",
        base_env_kwargs: dict | None = None,
        segment_length: int = DEFAULT_SEGMENT_LENGTH,
        teacher: SyntheticTeacher | str | dict | None = None,
        reward_mode: str = "expected",
        horizon: int | None = None,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self._duel = _Duel(base_env_id, base_env_kwargs, horizon, segment_length, teacher, reward_mode,
                           render_mode)
        self._init_players(self._duel.observation_space, self._duel.action_space)

    @property
    def teacher(self) -> SyntheticTeacher:
        return self._duel.teacher

    @property
    def horizon(self) -> int:
        return self._duel.horizon

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Both copies start from the same state."""
        self._reseed(seed)
        self.agents = self.possible_agents[:]
        o0, o1 = self._duel.reset(self.np_random)
        infos = {a: {"alive": True, "t": 0} for a in self.agents}
        return {"player_0": o0, "player_1": o1}, infos

    def step(self, actions: dict[str, Any]):
        """Step both copies; pay the segment preference at scoring steps."""
        check_parallel_actions(actions, self.agents)
        d = self._duel
        true_r, scored, y, p, returns, terminated, truncated = d.step(
            (actions["player_0"], actions["player_1"]), self.np_random)
        y0 = y if scored else 0.0
        rewards = {"player_0": float(y0), "player_1": float(1.0 - y0) if scored else 0.0}
        obs = {"player_0": d.obs[0], "player_1": d.obs[1]}
        infos = {a: _info(d, i, true_r, scored, p, returns) for i, a in enumerate(self.possible_agents)}
        terms = dict.fromkeys(self.possible_agents, terminated)
        truncs = dict.fromkeys(self.possible_agents, truncated)
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def render(self):
        """Both copies side by side (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return self._duel.render()

    def close(self) -> None:
        self._duel.close()


def parallel_env(**kwargs) -> ControlPreferenceParallelEnv:
    """PettingZoo parallel env; kwargs as :class:`ControlPreferenceParallelEnv`."""
    return ControlPreferenceParallelEnv(**kwargs)


def aec_env(**kwargs):
    """PettingZoo AEC env (``parallel_to_aec`` of :func:`parallel_env`)."""
    return parallel_to_aec(parallel_env(**kwargs))


class ControlPreferenceEnv(gymnasium.Env):
    """Player 0 of the control preference game against a fixed opponent policy.

    Parameters
    ----------
    base_env_id, base_env_kwargs, segment_length, teacher, reward_mode, horizon, render_mode
        As for :class:`ControlPreferenceParallelEnv`.
    opponent
        The opponent: a callable ``obs -> action``, an object with SB3's
        ``predict`` (an SB3 model, a prefgym agent), or None (uniform random actions).
    opponent_deterministic
        Passed to ``predict``.
    on_agent_done
        ``"settle"``: when the agent's copy terminates, play the opponent on to the
        end of the game and pay the remaining comparisons in the last reward (returns
        equal the parallel game's); ``"forfeit"``: score the current segment only.

    Notes
    -----
    Observation and action spaces are the task's. ``info`` as in the parallel
    env, plus ``opponent_true_reward``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        base_env_id: str = "InvertedPendulum-v5",
        base_env_kwargs: dict | None = None,
        opponent=None,
        segment_length: int = DEFAULT_SEGMENT_LENGTH,
        teacher: SyntheticTeacher | str | dict | None = None,
        reward_mode: str = "expected",
        horizon: int | None = None,
        on_agent_done: str = "settle",
        opponent_deterministic: bool = True,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}")
        if on_agent_done not in ("settle", "forfeit"):
            raise ValueError(f"on_agent_done must be 'settle' or 'forfeit'; got {on_agent_done!r}")
        self.render_mode = render_mode
        self.on_agent_done = on_agent_done
        self.opponent_deterministic = opponent_deterministic
        self._duel = _Duel(base_env_id, base_env_kwargs, horizon, segment_length, teacher, reward_mode,
                           render_mode)
        self.observation_space = self._duel.observation_space
        self.action_space = self._duel.action_space
        self._opp_space = None
        self.set_opponent(opponent)
        self._started = False
        self._ended = False

    @property
    def teacher(self) -> SyntheticTeacher:
        return self._duel.teacher

    @property
    def horizon(self) -> int:
        return self._duel.horizon

    def set_opponent(self, policy) -> None:
        """Replace the opponent (callable, SB3-style model, or None for random), effective next step."""
        self._opponent_obj = policy
        self._opponent = as_policy(policy, self.action_space, self.opponent_deterministic)

    @property
    def opponent(self):
        return self._opponent_obj

    def _opponent_action(self):
        if self._opponent is None:
            return self._opp_space.sample()
        return self._opponent(self._duel.obs[1])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start both copies from one state; observe the agent's copy."""
        super().reset(seed=check_seed(seed))
        o0, _ = self._duel.reset(self.np_random)
        self._opp_space = copy.deepcopy(self.action_space)
        self._opp_space.seed(int(self.np_random.integers(2**31 - 1)))
        self._started = True
        self._ended = False
        return o0, {"alive": True, "t": 0}

    def step(self, action):
        """Step both copies (the opponent acts at its own observation); reward the segment preference."""
        if not self._started:
            raise InvalidActionError(STEP_AFTER_END if self._ended else STEP_BEFORE_RESET)
        d = self._duel
        opp = self._opponent_action() if d.alive[1] else None
        true_r, scored, y, p, returns, terminated, truncated = d.step((action, opp), self.np_random)
        reward = float(y) if scored else 0.0
        info = _info(d, 0, true_r, scored, p, returns)
        info["opponent_true_reward"] = true_r[1]
        if not d.alive[0] and not (terminated or truncated):
            # the agent's copy has terminated; the opponent plays on
            if self.on_agent_done == "forfeit":
                if not scored:  # score the partial segment now; later segments are not played
                    y, p, returns = d.score(self.np_random)
                    reward += float(y)
                    info.update(win_prob=p, segment_returns=(float(returns[0]), float(returns[1])))
            else:
                while True:
                    opp = self._opponent_action() if d.alive[1] else None
                    _, s2, y2, _, _, term2, trunc2 = d.step((None, opp), self.np_random)
                    if s2:
                        reward += float(y2)
                    if term2 or trunc2:
                        break
            terminated = True
            truncated = False
        if terminated or truncated:
            self._started = False
            self._ended = True
        return d.obs[0], reward, bool(terminated), bool(truncated), info

    def render(self):
        """Both copies side by side (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return self._duel.render()

    def close(self) -> None:
        self._duel.close()


# ------------------------------------------------------------------ registration
def register_mujoco_envs() -> dict[str, Callable[..., ParallelEnv]]:
    """Register the :data:`CONTROL_TASKS` ids (idempotent); return their parallel-env factories.

    The ids need ``mujoco`` only when made (Pendulum needs none). Merge the
    result into :data:`prefgym.envs.registration.PARALLEL_ENVS`.
    """
    from prefgym.envs.registration import HORIZON_WRAPPER

    for env_id, base in CONTROL_TASKS.items():
        if env_id not in gymnasium.registry:
            # the default horizon is the task's time limit (the env truncates itself there)
            gymnasium.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"base_env_id": base},
                               max_episode_steps=gymnasium.spec(base).max_episode_steps,
                               additional_wrappers=(HORIZON_WRAPPER,))
    return {env_id: partial(parallel_env, base_env_id=base) for env_id, base in CONTROL_TASKS.items()}
