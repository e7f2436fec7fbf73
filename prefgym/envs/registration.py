"""Gymnasium registration of the prefgym envs, and their PettingZoo twins.

>>> import gymnasium, prefgym
>>> env = gymnasium.make("prefgym/RPS-v0")
>>> par = make_parallel("prefgym/RPS-v0")
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import gymnasium
from pettingzoo import ParallelEnv

from prefgym.envs.matrix import parallel_env

__all__ = ["ENV_KWARGS", "PARALLEL_ENVS", "register_envs", "make_parallel"]

# Default kwargs of each id; kwargs given to ``gymnasium.make`` / ``make_parallel`` override them.
ENV_KWARGS: dict[str, dict] = {
    "prefgym/RPS-v0": {"generator": "rps"},
    "prefgym/MatrixGame-v0": {},
}

PARALLEL_ENVS: dict[str, Callable[..., ParallelEnv]] = {
    env_id: partial(parallel_env, **kwargs) for env_id, kwargs in ENV_KWARGS.items()
}


def register_envs() -> None:
    """Register every id with Gymnasium; ids already registered are left alone."""
    for env_id, kwargs in ENV_KWARGS.items():
        if env_id not in gymnasium.registry:
            # No max_episode_steps: the env terminates itself after ``rounds`` steps.
            gymnasium.register(
                id=env_id, entry_point="prefgym.envs.matrix:MatrixGameEnv", kwargs=dict(kwargs)
            )


def make_parallel(env_id: str, **kwargs) -> ParallelEnv:
    """The PettingZoo parallel env of a registered id, e.g. ``make_parallel("prefgym/RPS-v0")``."""
    try:
        factory = PARALLEL_ENVS[env_id]
    except KeyError:
        known = sorted(PARALLEL_ENVS)
        raise ValueError(f"unknown parallel env id {env_id!r}; choose from {known}") from None
    return factory(**kwargs)
