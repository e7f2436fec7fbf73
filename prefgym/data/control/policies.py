"""Policies to roll out and the rollout loop: scripted demonstrators, SAC zips, :func:`collect_episodes`.

:func:`scripted_policy` gives a controller for the cheap tasks (``InvertedPendulum``,
``Pendulum``); :func:`load_policy` reads a SAC expert or checkpoint without pickle;
:func:`collect_episodes` rolls any of them (or an SB3 model, a callable, or uniform
random actions) out into :class:`~prefgym.data.control.episodes.Episode` objects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from prefgym.data.control.episodes import Episode
from prefgym.errors import DatasetError, InvalidArgumentError
from prefgym.validation import check_int, check_seed

__all__ = ["collect_episodes", "load_policy", "scripted_policy"]


def _inverted_pendulum_pd(obs: np.ndarray) -> float:
    # InvertedPendulum-v5 obs = (cart x, pole angle, cart velocity, pole angular velocity)
    return float(np.dot([0.3, 10.0, 1.0, 3.0], obs))


def _pendulum_swing_up(obs: np.ndarray) -> float:
    # Pendulum-v1 obs = (cos th, sin th, th_dot); th = 0 is upright. Energy pumping, then PD at the top.
    c, s, w = obs
    if c > 0.8:
        return -(8.0 * float(np.arctan2(s, c)) + 1.5 * float(w))
    energy = 0.5 * w**2 / 15.0 + (c - 1.0)  # < 0 below the upright energy
    return 2.0 * float(np.sign(w) or 1.0) * (1.0 if energy < 0 else -1.0)


_SCRIPTED: dict[str, tuple[Callable[[np.ndarray], float], float]] = {
    "InvertedPendulum-v5": (_inverted_pendulum_pd, 3.0),
    "InvertedPendulum-v4": (_inverted_pendulum_pd, 3.0),
    "Pendulum-v1": (_pendulum_swing_up, 2.0),
}


def scripted_policy(env_id: str, noise: float = 0.0,
                    seed: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A scripted demonstrator for the cheap tasks, with Gaussian action noise of std ``noise``.

    ``InvertedPendulum-v5``: a PD controller (balances for 1000 steps up to noise ~1;
    noise 1.5-3 gives graded, falling policies). ``Pendulum-v1``: energy-pumping
    swing-up then PD (return about -150; noise 2-4 degrades it). Actions are clipped
    to the action bounds.
    """
    if env_id not in _SCRIPTED:
        raise ValueError(f"no scripted demonstrator for {env_id!r}; have {sorted(_SCRIPTED)}")
    law, bound = _SCRIPTED[env_id]
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        u = law(np.asarray(obs, np.float64)) + (noise * rng.standard_normal() if noise else 0.0)
        return np.array([np.clip(u, -bound, bound)], dtype=np.float32)

    return policy


def load_policy(path: str | Path, device: str = "cpu", trust_remote_code: bool = False):
    """Load a SAC expert or checkpoint written by ``prefgym data expert`` (no pickle).

    A third-party SB3 zip (whose pickled fields SB3 un-pickles, running code from the
    file) is read only with ``trust_remote_code=True``; otherwise
    :class:`~prefgym.errors.UnsafeFileError`. A missing or broken file raises
    :class:`~prefgym.errors.AgentLoadError`.
    """
    from prefgym.sb3_files import load_sb3_model

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"policy file {str(path)!r} not found")
    return load_sb3_model(path, device=device, trust_remote_code=trust_remote_code, algorithm="SAC")


def _as_policy(policy, env, deterministic: bool,
               trust_remote_code: bool = False) -> Callable[[np.ndarray], Any]:
    if policy is None:
        return lambda obs: env.action_space.sample()
    if isinstance(policy, (str, Path)):
        policy = load_policy(policy, trust_remote_code=trust_remote_code)
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return policy
    raise TypeError("policy must be None (random), a path, an SB3 model or a callable; "
                    f"got {type(policy).__name__}")


def _make_env(env, env_kwargs: dict | None):
    import gymnasium

    if isinstance(env, str):
        return gymnasium.make(env, **(env_kwargs or {})), True
    return env, False


def collect_episodes(
    env,
    policy=None,
    n_episodes: int | None = None,
    n_steps: int | None = None,
    deterministic: bool = True,
    seed: int = 0,
    env_kwargs: dict | None = None,
    metadata: dict[str, Any] | None = None,
    progress_bar: bool = False,
    desc: str = "rollouts",
    trust_remote_code: bool = False,
) -> list[Episode]:
    """Roll out ``policy`` for ``n_episodes`` episodes, or whole episodes until ``n_steps`` steps.

    Parameters
    ----------
    env
        A Gymnasium env or id (made with ``env_kwargs``).
    policy
        None (uniform random), a path to an SB3 zip, an SB3 model (``predict``), or a
        callable ``obs -> action``.
    seed
        Episode ``i`` is reset with ``seed + i``; the action space is seeded with ``seed``.
    metadata
        Copied into every episode's metadata.
    trust_remote_code
        Allow a third-party SB3 zip as ``policy`` (see :func:`load_policy`).
    """
    if (n_episodes is None) == (n_steps is None):
        raise InvalidArgumentError("give exactly one of n_episodes and n_steps")
    if n_episodes is not None:
        n_episodes = check_int(n_episodes, "n_episodes", minimum=1)
    if n_steps is not None:
        n_steps = check_int(n_steps, "n_steps", minimum=1)
    seed = check_seed(seed)
    env, owned = _make_env(env, env_kwargs)
    env.action_space.seed(seed)
    act = _as_policy(policy, env, deterministic, trust_remote_code)
    total = n_episodes if n_episodes is not None else n_steps
    bar = tqdm(total=total, disable=not progress_bar, desc=desc, unit="ep" if n_episodes else "step",
               mininterval=0.25)
    episodes: list[Episode] = []
    steps = 0
    try:
        while (n_episodes is not None and len(episodes) < n_episodes) or \
                (n_steps is not None and steps < n_steps):
            obs, _ = env.reset(seed=seed + len(episodes))
            observations, actions, rewards = [obs], [], []
            terminated = truncated = False
            while not (terminated or truncated):
                a = act(obs)
                obs, r, terminated, truncated, _ = env.step(a)
                observations.append(obs)
                actions.append(a)
                rewards.append(float(r))
                if n_steps is not None:
                    bar.update(1)
            steps += len(rewards)
            episodes.append(Episode(np.asarray(observations), np.asarray(actions), np.asarray(rewards),
                                    bool(terminated), bool(truncated), dict(metadata or {})))
            if n_episodes is not None:
                bar.update(1)
    finally:
        bar.close()
        if owned:
            env.close()
    return episodes
