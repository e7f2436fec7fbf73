"""Self-play for any Stable-Baselines3 algorithm: a learner against a pool of its own frozen snapshots.

Any two-player prefgym game (matrix, gridworld, MuJoCo preference; any PettingZoo
parallel env with two agents) becomes a single-agent Gymnasium env whose opponent
acts from a frozen copy of the learner's policy, drawn from a pool at every reset.
An SB3 callback adds a fresh snapshot every ``snapshot_every`` steps; the pool keeps
the newest ``pool_size`` and an episode's opponent is the newest one
(``sampling="latest"``) or one drawn uniformly from the pool (``"uniform"``, the
fictitious-play flavour that damps cycling in non-transitive games).

>>> from stable_baselines3 import PPO
>>> from prefgym.selfplay import SelfPlayCallback, make_selfplay_vec_env
>>> env = make_selfplay_vec_env("prefgym/RPS-v0", n_envs=2, pool_size=5, sampling="uniform", seed=0)
>>> model = PPO("MlpPolicy", env, n_steps=64, seed=0)
>>> model = model.learn(2_000, callback=SelfPlayCallback(snapshot_every=500))

Pieces:

- :class:`SnapshotPool`: the frozen policies (deep copies of ``model.policy`` in
  eval mode, no gradients), newest last, with the timestep each was taken at.
- :class:`SelfPlayEnv`: ``gymnasium.Env`` around a parallel env; the learner plays
  ``agent`` (``"player_0"`` by default), the opponent the other agent. Before the
  first snapshot the opponent acts uniformly at random. ``observe_step=True``
  puts the step index into the observation (``Discrete(n)`` becomes
  ``MultiDiscrete([H, n])``, a ``Box`` gains a last entry ``t / H``) so that a
  learner can represent the non-stationary policies of finite-horizon games.
- :class:`SelfPlayCallback`: adds snapshots at the start of training and every
  ``snapshot_every`` calls to the env (``model.num_timesteps``), through
  ``VecEnv.env_method``, so it works with ``DummyVecEnv`` and ``SubprocVecEnv``.
- :func:`tabular_policy` and :class:`ExploitabilityCallback`: on a tabular Markov
  game (the gridworlds), the learner's action distributions at every ``(h, s)``
  read out as a policy ``(K, H, S, A)`` and its *exact* exploitability
  (:meth:`~prefgym.games.markov.TabularMarkovGame.exploitability`), logged over
  training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from prefgym.errors import InvalidArgumentError, InvalidTypeError
from prefgym.optional import require

__all__ = [
    "SAMPLING",
    "SnapshotPool",
    "SelfPlayEnv",
    "SelfPlayCallback",
    "StepObservation",
    "ExploitabilityCallback",
    "frozen_policy",
    "make_selfplay_env",
    "make_selfplay_vec_env",
    "tabular_policy",
    "policy_from_occupancy",
    "episode_horizon",
    "snapshot_timesteps",
]

#: how an episode's opponent is drawn from the pool
SAMPLING = ("latest", "uniform")


# ------------------------------------------------------------------ snapshots
def frozen_policy(model) -> Any:
    """A frozen deep copy of an SB3 model's policy (eval mode, no gradients); ``.predict`` works.

    ``model`` is an SB3 algorithm (``model.policy`` is copied) or a policy itself.
    """
    policy = getattr(model, "policy", model)
    if not hasattr(policy, "predict"):
        raise InvalidTypeError(f"a snapshot needs an SB3 model or policy with .predict(); "
                               f"got {type(model).__name__}")
    if hasattr(policy, "_get_constructor_parameters") and hasattr(policy, "state_dict"):
        # rebuilt as SB3 saves policies (constructor arguments + weights): deepcopy fails on gSDE's
        # non-leaf noise tensors, and the optimisers' moment buffers are not needed to act
        torch = require("torch", "sb3", "snapshots of SB3 policies need torch")
        with torch.random.fork_rng(devices=[]):  # building the copy must not move training's random stream
            snap = type(policy)(**policy._get_constructor_parameters())
            if getattr(snap, "use_sde", False) and hasattr(snap, "reset_noise"):
                snap.reset_noise()
        snap.load_state_dict(policy.state_dict())
        snap.to(getattr(policy, "device", "cpu"))
        for m in [snap, *snap.modules()]:
            if getattr(m, "optimizer", None) is not None:
                m.optimizer = None
    else:
        snap = copy.deepcopy(policy)
    if hasattr(snap, "set_training_mode"):
        snap.set_training_mode(False)
    if hasattr(snap, "parameters"):
        for p in snap.parameters():
            p.requires_grad_(False)
    return snap


def _check_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InvalidArgumentError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


class SnapshotPool:
    """The newest ``max_size`` frozen policies, and how an opponent is drawn from them.

    Parameters
    ----------
    max_size
        Snapshots kept; adding one more drops the oldest.
    sampling
        ``"latest"``: always the newest snapshot; ``"uniform"``: uniformly among those kept.
    """

    def __init__(self, max_size: int = 5, sampling: str = "uniform"):
        self.max_size = _check_int(max_size, "pool_size")
        if sampling not in SAMPLING:
            raise InvalidArgumentError(f"sampling must be one of {SAMPLING}; got {sampling!r}")
        self.sampling = sampling
        self.policies: list[Any] = []
        self.timesteps: list[int] = []
        self.num_added = 0

    def __len__(self) -> int:
        return len(self.policies)

    def add(self, policy, timestep: int = 0) -> None:
        """Keep ``policy`` (already frozen) taken at ``timestep``; drop the oldest beyond ``max_size``."""
        if not hasattr(policy, "predict"):
            raise InvalidTypeError(f"a snapshot must have .predict(); got {type(policy).__name__}")
        self.policies.append(policy)
        self.timesteps.append(int(timestep))
        self.num_added += 1
        if len(self.policies) > self.max_size:
            del self.policies[0], self.timesteps[0]

    def sample(self, rng: np.random.Generator) -> int | None:
        """Index of the opponent for one episode (None while the pool is empty)."""
        if not self.policies:
            return None
        if self.sampling == "latest":
            return len(self.policies) - 1
        return int(rng.integers(len(self.policies)))


# ------------------------------------------------------------------ observations
def episode_horizon(par_env) -> int:
    """The fixed episode length of a prefgym parallel env: ``rounds``, ``game.horizon`` or ``horizon``.

    ``rounds`` comes first: a matrix env repeats its one-move game (``game.horizon = 1``) ``rounds`` times.
    """
    env = getattr(par_env, "unwrapped", par_env)
    game = getattr(env, "game", None)
    candidates = (getattr(env, "rounds", None), getattr(game, "horizon", None), getattr(env, "horizon", None))
    for value in candidates:
        if isinstance(value, int | np.integer) and value >= 1:
            return int(value)
    raise InvalidArgumentError(f"observe_step=True needs an env with a fixed horizon (game.horizon, rounds "
                               f"or horizon); {type(env).__name__} has none")


class _StepObservation:
    """Adds the step index ``t`` (capped at ``H - 1``) to an observation."""

    def __init__(self, space: spaces.Space, horizon: int):
        self.H = horizon
        self.base = space
        if isinstance(space, spaces.Discrete):
            self.space = spaces.MultiDiscrete([horizon, int(space.n)])
        elif isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
            self.space = spaces.MultiDiscrete([horizon, *space.nvec.tolist()])
        elif isinstance(space, spaces.Box) and len(space.shape) == 1:
            low = np.append(space.low, 0.0).astype(np.float32)
            high = np.append(space.high, 1.0).astype(np.float32)
            self.space = spaces.Box(low, high, dtype=np.float32)
        else:
            raise InvalidArgumentError(f"observe_step=True supports Discrete, 1-D MultiDiscrete and 1-D Box "
                                       f"observations; got {space}")

    def __call__(self, obs, t: int):
        t = min(int(t), self.H - 1)
        if isinstance(self.base, spaces.Discrete):
            return np.array([t, int(obs)], dtype=np.int64)
        if isinstance(self.base, spaces.MultiDiscrete):
            return np.concatenate([[t], np.asarray(obs, dtype=np.int64)])
        return np.append(np.asarray(obs, dtype=np.float32), np.float32(t / self.H))


class StepObservation(gymnasium.Wrapper):
    """Add the step index to a single-agent env's observation, as ``SelfPlayEnv(observe_step=True)`` does.

    Used to evaluate a self-play learner against the single-agent views (e.g.
    ``gymnasium.make("prefgym/GridworldRandom-v0")``); the horizon is read as by
    :func:`episode_horizon`.
    """

    def __init__(self, env: gymnasium.Env, horizon: int | None = None):
        super().__init__(env)
        self._encode = _StepObservation(env.observation_space,
                                        episode_horizon(env) if horizon is None else int(horizon))
        self.observation_space = self._encode.space
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._t = 0
        return self._encode(obs, 0), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        return self._encode(obs, self._t), reward, terminated, truncated, info


# ------------------------------------------------------------------ the env
class SelfPlayEnv(gymnasium.Env):
    """One player of a two-player PettingZoo parallel env against snapshots of the learner.

    Parameters
    ----------
    parallel_env
        A PettingZoo ``ParallelEnv`` with exactly two agents (e.g.
        ``prefgym.envs.make_parallel("prefgym/GridworldRandom-v0")``), or a registered
        prefgym id, made by :func:`prefgym.envs.make_parallel` with ``env_kwargs``.
    pool_size, sampling
        The :class:`SnapshotPool`: snapshots kept, and ``"latest"`` or ``"uniform"``.
    agent
        The learner's agent name; default the first of ``possible_agents``.
    opponent_deterministic
        Passed to the snapshot's ``predict``; False (default) samples its actions, as
        mixed equilibria need.
    observe_step
        Add the step index to the observation (see the module docstring).
    env_kwargs
        Keyword arguments for ``make_parallel`` when ``parallel_env`` is an id.

    Notes
    -----
    The reward is the learner's reward in the parallel env; the episode ends when the
    learner's termination or truncation flag is set. ``info`` is the learner's info
    plus ``opponent_snapshot``: the timestep at which the episode's opponent was
    snapshotted (-1: the uniform-random opponent before the first snapshot).
    Snapshots arrive through :meth:`add_snapshot` (called by :class:`SelfPlayCallback`).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"]}

    def __init__(
        self,
        parallel_env,
        pool_size: int = 5,
        sampling: str = "uniform",
        agent: str | None = None,
        opponent_deterministic: bool = False,
        observe_step: bool = False,
        env_kwargs: dict | None = None,
    ):
        if isinstance(parallel_env, str):
            from prefgym.envs import make_parallel

            try:
                parallel_env = make_parallel(parallel_env, **(env_kwargs or {}))
            except ValueError as exc:
                raise InvalidArgumentError(str(exc)) from None
        elif env_kwargs:
            raise InvalidArgumentError("env_kwargs apply only when parallel_env is an env id")
        agents = list(getattr(parallel_env, "possible_agents", []))
        if len(agents) != 2:
            raise InvalidArgumentError(f"self-play needs a two-player parallel env; got agents {agents}")
        self.par = parallel_env
        self.agent = agents[0] if agent is None else agent
        if self.agent not in agents:
            raise InvalidArgumentError(f"agent must be one of {agents}; got {agent!r}")
        self.opponent = agents[1] if self.agent == agents[0] else agents[0]
        self.pool = SnapshotPool(pool_size, sampling)
        self.opponent_deterministic = bool(opponent_deterministic)
        base_obs = parallel_env.observation_space(self.agent)
        if base_obs != parallel_env.observation_space(self.opponent):
            raise InvalidArgumentError("self-play needs both players to observe the same space; got "
                                       f"{base_obs} and {parallel_env.observation_space(self.opponent)}")
        self._encode = _StepObservation(base_obs, episode_horizon(parallel_env)) if observe_step else None
        self.observation_space = self._encode.space if observe_step else base_obs
        self.action_space = parallel_env.action_space(self.agent)
        self._opp_action_space = copy.deepcopy(parallel_env.action_space(self.opponent))
        self.render_mode = getattr(parallel_env, "render_mode", None)
        self._opp_index: int | None = None
        self._opp_obs = None
        self._t = 0
        self._running = False

    @property
    def game(self):
        """The parallel env's game, if it has one (matrix and gridworld envs)."""
        return getattr(getattr(self.par, "unwrapped", self.par), "game", None)

    def add_snapshot(self, policy, timestep: int = 0) -> int:
        """Add a frozen policy to the pool (effective from the next reset); return the pool size."""
        self.pool.add(policy, timestep)
        return len(self.pool)

    def _obs(self, obs):
        return obs if self._encode is None else self._encode(obs, self._t)

    def _opponent_action(self):
        if self._opp_index is None:
            return self._opp_action_space.sample()
        action, _ = self.pool.policies[self._opp_index].predict(
            self._obs(self._opp_obs), deterministic=self.opponent_deterministic)
        if isinstance(self._opp_action_space, spaces.Discrete):
            return np.int64(np.asarray(action).reshape(-1)[0])
        return action

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Draw the episode's opponent from the pool and reset the game."""
        super().reset(seed=seed)
        inner_seed = int(self.np_random.integers(2**31 - 1))
        self._opp_action_space.seed(inner_seed + 1)
        obs, infos = self.par.reset(seed=inner_seed, options=options)
        self._opp_index = self.pool.sample(self.np_random)
        self._opp_obs, self._t, self._running = obs[self.opponent], 0, True
        return self._obs(obs[self.agent]), self._info(infos.get(self.agent, {}))

    def _info(self, info: dict) -> dict:
        snap = -1 if self._opp_index is None else self.pool.timesteps[self._opp_index]
        return {**info, "opponent_snapshot": snap}

    def step(self, action):
        """Both players act (the opponent from its snapshot at its own observation)."""
        if not self._running:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        actions = {self.agent: action, self.opponent: self._opponent_action()}
        obs, rewards, terms, truncs, infos = self.par.step(actions)
        self._t += 1
        self._opp_obs = obs.get(self.opponent, self._opp_obs)
        terminated, truncated = bool(terms.get(self.agent, False)), bool(truncs.get(self.agent, False))
        if terminated or truncated:
            self._running = False
        return (self._obs(obs[self.agent]), float(rewards[self.agent]), terminated, truncated,
                self._info(infos.get(self.agent, {})))

    def render(self):
        return self.par.render()

    def close(self) -> None:
        self.par.close()


def make_selfplay_env(env_id: str, env_kwargs: dict | None = None, **selfplay_kwargs) -> SelfPlayEnv:
    """``SelfPlayEnv(make_parallel(env_id, **env_kwargs), **selfplay_kwargs)``."""
    return SelfPlayEnv(env_id, env_kwargs=env_kwargs, **selfplay_kwargs)


def make_selfplay_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict | None = None,
    vec_env_cls=None,
    vec_env_kwargs: dict | None = None,
    monitor_dir: str | None = None,
    **selfplay_kwargs,
):
    """``n_envs`` :class:`SelfPlayEnv` copies, each in a Monitor, in a VecEnv (``DummyVecEnv`` by default).

    Every copy has its own pool; :class:`SelfPlayCallback` adds each snapshot to all of them.
    """
    require("stable_baselines3", "sb3", "self-play training needs stable-baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    n_envs = _check_int(n_envs, "n_envs")
    SelfPlayEnv(env_id, env_kwargs=env_kwargs, **selfplay_kwargs).close()  # fail fast on bad arguments
    return make_vec_env(lambda: make_selfplay_env(env_id, env_kwargs, **selfplay_kwargs), n_envs=n_envs,
                        seed=seed, vec_env_cls=vec_env_cls, vec_env_kwargs=vec_env_kwargs,
                        monitor_dir=monitor_dir)


# ------------------------------------------------------------------ callbacks
def _base_callback():
    callbacks = require("stable_baselines3.common.callbacks", "sb3", "self-play needs stable-baselines3")
    return callbacks.BaseCallback


class SelfPlayCallback(_base_callback()):
    """Add a frozen snapshot of the learner to every env's pool at the start and every N steps.

    Parameters
    ----------
    snapshot_every
        Environment steps (``model.num_timesteps``, summed over the VecEnv's copies)
        between snapshots.
    verbose
        SB3's verbosity.

    Notes
    -----
    Logs ``selfplay/snapshots`` (snapshots taken) and ``selfplay/pool_size``.
    """

    def __init__(self, snapshot_every: int = 10_000, verbose: int = 0):
        super().__init__(verbose)
        self.snapshot_every = _check_int(snapshot_every, "snapshot_every")
        self.num_snapshots = 0
        self._last = 0

    def _snapshot(self) -> None:
        snap = frozen_policy(self.model)
        sizes = self.training_env.env_method("add_snapshot", snap, int(self.num_timesteps))
        self.num_snapshots += 1
        self._last = self.num_timesteps
        self.logger.record("selfplay/snapshots", self.num_snapshots)
        self.logger.record("selfplay/pool_size", int(max(sizes)))
        if self.verbose:
            print(f"self-play: snapshot {self.num_snapshots} at {self.num_timesteps} steps")

    def _on_training_start(self) -> None:
        try:
            self.training_env.get_attr("pool")
        except AttributeError:
            raise InvalidArgumentError("SelfPlayCallback needs SelfPlayEnv environments (see "
                                       "prefgym.selfplay.make_selfplay_vec_env)") from None
        self._snapshot()

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.snapshot_every:
            self._snapshot()
        return True


def tabular_policy(model, game, observe_step: bool = True) -> np.ndarray:
    """The learner's action distributions at every ``(h, s)`` as a tabular policy ``(K, H, S, A)``.

    Parameters
    ----------
    model
        An SB3 model or policy trained on the gridworld's observation (``Discrete(S)``)
        or on :class:`SelfPlayEnv`'s ``observe_step`` encoding ``[h, s]``.
    game
        The :class:`~prefgym.games.markov.TabularMarkovGame`.
    observe_step
        Whether the observation carries ``h`` (else one stationary policy is broadcast over ``h``).

    Notes
    -----
    Policies with a distribution (PPO, A2C) give their exact probabilities; others
    (DQN) their greedy action as a one-hot row. The observation does not name the start
    state, so the same policy is used for every start ``k``.
    """
    torch = require("torch", "sb3", "reading out an SB3 policy needs torch")
    policy = getattr(model, "policy", model)
    H, S, A = game.horizon, game.n_states, game.n_actions
    if observe_step:
        h, s = np.meshgrid(np.arange(H), np.arange(S), indexing="ij")
        obs = np.stack([h.ravel(), s.ravel()], axis=1)
    else:
        obs = np.arange(S)
    if hasattr(policy, "get_distribution"):
        with torch.no_grad():
            obs_t, _ = policy.obs_to_tensor(obs)
            probs = policy.get_distribution(obs_t).distribution.probs.cpu().numpy().astype(np.float64)
    else:
        actions, _ = policy.predict(obs, deterministic=True)
        probs = np.eye(A)[np.asarray(actions).reshape(-1)]
    if probs.shape[-1] != A:
        raise InvalidArgumentError(f"the policy has {probs.shape[-1]} actions; the game has {A}")
    probs = probs / probs.sum(axis=-1, keepdims=True)
    pi = probs.reshape(H, S, A) if observe_step else np.broadcast_to(probs, (H, S, A))
    return np.broadcast_to(pi, game.policy_shape).copy()


def policy_from_occupancy(occupancy: np.ndarray) -> np.ndarray:
    """``pi_h(a | s) = d_h(s, a) / sum_b d_h(s, b)`` (any scale of ``d``); uniform where ``d_h(s) = 0``."""
    d = np.asarray(occupancy, dtype=np.float64)
    mass = d.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pi = np.where(mass > 0, d / mass, 1.0 / d.shape[-1])
    return pi


class ExploitabilityCallback(_base_callback()):
    """Record the exact exploitability of the learner's tabular read-out every ``eval_every`` steps.

    Parameters
    ----------
    game
        The tabular Markov game the learner plays.
    eval_every
        Environment steps between evaluations (also one at the start and at the end).
    observe_step
        As for :func:`tabular_policy`.

    Attributes
    ----------
    timesteps, exploitability
        Lists of the evaluation points and the exploitability
        ``max_pi <nu_1, V^{pi, pi^k}> - H/2`` of the read-out ``pi^k`` (001 Sec. 4.1).
    average_exploitability
        Exploitability of the average iterate: the policy whose occupancy is the mean of
        the read-outs' occupancies so far (the uniform mixture of the read-outs, since the
        value is linear in the occupancy), as for the tabular agents' ``average_policy``.
    """

    def __init__(self, game, eval_every: int = 1_000, observe_step: bool = True, verbose: int = 0):
        super().__init__(verbose)
        self.game = game
        self.eval_every = _check_int(eval_every, "eval_every")
        self.observe_step = observe_step
        self.timesteps: list[int] = []
        self.exploitability: list[float] = []
        self.average_exploitability: list[float] = []
        self._occupancy_sum: np.ndarray | None = None
        self._last_occupancy: np.ndarray | None = None
        self._last = -1

    def _evaluate(self, replace: bool = False) -> None:
        """Evaluate now; at a timestep already evaluated, skip, or (``replace``) re-evaluate it."""
        if self.timesteps and self.timesteps[-1] == self.num_timesteps:
            if not replace:
                return
            self._occupancy_sum = self._occupancy_sum - self._last_occupancy
            del self.timesteps[-1], self.exploitability[-1], self.average_exploitability[-1]
        pi = tabular_policy(self.model, self.game, self.observe_step)
        e = float(self.game.exploitability(pi))
        d = self._last_occupancy = self.game.occupancy(pi)
        self._occupancy_sum = d if self._occupancy_sum is None else self._occupancy_sum + d
        e_avg = float(self.game.exploitability(policy_from_occupancy(self._occupancy_sum)))
        self.timesteps.append(int(self.num_timesteps))
        self.exploitability.append(e)
        self.average_exploitability.append(e_avg)
        self._last = self.num_timesteps
        self.logger.record("selfplay/exploitability", e)
        self.logger.record("selfplay/average_exploitability", e_avg)

    def _on_training_start(self) -> None:
        self._evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.eval_every:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        # after the final update (an evaluation at this timestep inside the last rollout came before it)
        self._evaluate(replace=True)


def snapshot_timesteps(env) -> Sequence[int]:
    """Timesteps of the snapshots in the pool of a :class:`SelfPlayEnv` (or the first env of a VecEnv)."""
    if hasattr(env, "get_attr"):
        return list(env.get_attr("pool")[0].timesteps)
    return list(getattr(env, "unwrapped", env).pool.timesteps)

