"""Gymnasium registration of the prefgym envs, and their PettingZoo twins.

>>> import gymnasium, prefgym
>>> env = gymnasium.make("prefgym/RPS-v0")
>>> par = make_parallel("prefgym/RPS-v0")
>>> grid = gymnasium.make("prefgym/Gridworld-v0", game=prefgym.games.cyclic_goals_gridworld(horizon=6))
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import gymnasium
from pettingzoo import ParallelEnv

from prefgym.envs import gridworld, matrix

__all__ = ["ENV_KWARGS", "ENTRY_POINTS", "PARALLEL_ENVS", "register_envs", "make_parallel"]

MATRIX_ENTRY_POINT = "prefgym.envs.matrix:MatrixGameEnv"
GRIDWORLD_ENTRY_POINT = "prefgym.envs.gridworld:GridworldEnv"

# Default kwargs of each matrix id; kwargs given to ``gymnasium.make`` / ``make_parallel`` override them.
MATRIX_ENV_KWARGS: dict[str, dict] = {
    "prefgym/RPS-v0": {"generator": "rps"},
    "prefgym/MatrixGame-v0": {},
}

# Gridworld ids fix only a *default* generator, so ``gymnasium.make(id, game=any_game)``,
# ``generator=...`` and ``generator_kwargs=...`` (for the default generator) all work.
GRIDWORLD_ENV_KWARGS: dict[str, dict] = {
    "prefgym/Gridworld-v0": {"default_generator": "cyclic_goals"},
    "prefgym/GridworldCyclicGoals-v0": {"default_generator": "cyclic_goals"},
    "prefgym/GridworldIntermediate-v0": {"default_generator": "intermediate"},
    "prefgym/GridworldRandom-v0": {"default_generator": "random", "default_generator_kwargs": {"seed": 0}},
}

ENV_KWARGS: dict[str, dict] = {**MATRIX_ENV_KWARGS, **GRIDWORLD_ENV_KWARGS}

ENTRY_POINTS: dict[str, str] = {
    **dict.fromkeys(MATRIX_ENV_KWARGS, MATRIX_ENTRY_POINT),
    **dict.fromkeys(GRIDWORLD_ENV_KWARGS, GRIDWORLD_ENTRY_POINT),
}

PARALLEL_ENVS: dict[str, Callable[..., ParallelEnv]] = {
    **{env_id: partial(matrix.parallel_env, **kw) for env_id, kw in MATRIX_ENV_KWARGS.items()},
    **{env_id: partial(gridworld.parallel_env, **kw) for env_id, kw in GRIDWORLD_ENV_KWARGS.items()},
}


def register_envs() -> None:
    """Register every id with Gymnasium; ids already registered are left alone."""
    for env_id, kwargs in ENV_KWARGS.items():
        if env_id not in gymnasium.registry:
            # No max_episode_steps: each env terminates itself (after ``rounds`` / ``H`` steps).
            gymnasium.register(id=env_id, entry_point=ENTRY_POINTS[env_id], kwargs=dict(kwargs))


def make_parallel(env_id: str, **kwargs) -> ParallelEnv:
    """The PettingZoo parallel env of a registered id, e.g. ``make_parallel("prefgym/RPS-v0")``."""
    try:
        factory = PARALLEL_ENVS[env_id]
    except KeyError:
        known = sorted(PARALLEL_ENVS)
        raise ValueError(f"unknown parallel env id {env_id!r}; choose from {known}") from None
    return factory(**kwargs)
