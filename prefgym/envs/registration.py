"""Gymnasium registration of the prefgym envs, and their PettingZoo twins.

>>> import gymnasium, prefgym
>>> env = gymnasium.make("prefgym/RPS-v0")
>>> par = make_parallel("prefgym/RPS-v0")
>>> aec = make_aec("prefgym/RPS-v0")
>>> grid = gymnasium.make("prefgym/Gridworld-v0", game=prefgym.games.cyclic_goals_gridworld(horizon=6))
>>> grid.spec.max_episode_steps
6

Every id's spec carries ``max_episode_steps``: the horizon of the id's
default game (the envs also end themselves there). Made with arguments that
change the horizon (``game=``, ``rounds=``, ``horizon=``, other tasks),
:class:`SyncTimeLimit` moves the ``TimeLimit`` of ``gymnasium.make`` to the new
horizon, so no episode is cut short; an explicit ``max_episode_steps=`` other
than the registered one is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import gymnasium
from gymnasium.envs.registration import WrapperSpec
from gymnasium.utils import RecordConstructorArgs
from gymnasium.wrappers import TimeLimit
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import parallel_to_aec

from prefgym.envs import gridworld, matrix

__all__ = [
    "ENV_KWARGS",
    "ENTRY_POINTS",
    "HORIZON_WRAPPER",
    "MAX_EPISODE_STEPS",
    "PARALLEL_ENVS",
    "SyncTimeLimit",
    "make_aec",
    "make_parallel",
    "preload_in_forkserver",
    "register_envs",
]

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

# The horizon of each id's default game (``rounds=1``; the generators' default ``H``), kept here so that
# registering builds no game; a test checks each against ``gymnasium.make(id).unwrapped.horizon``.
MAX_EPISODE_STEPS: dict[str, int] = {
    "prefgym/RPS-v0": 1,
    "prefgym/MatrixGame-v0": 1,
    "prefgym/Gridworld-v0": 8,
    "prefgym/GridworldCyclicGoals-v0": 8,
    "prefgym/GridworldIntermediate-v0": 7,
    "prefgym/GridworldRandom-v0": 5,
}

ENTRY_POINTS: dict[str, str] = {
    **dict.fromkeys(MATRIX_ENV_KWARGS, MATRIX_ENTRY_POINT),
    **dict.fromkeys(GRIDWORLD_ENV_KWARGS, GRIDWORLD_ENTRY_POINT),
}

PARALLEL_ENVS: dict[str, Callable[..., ParallelEnv]] = {
    **{env_id: partial(matrix.parallel_env, **kw) for env_id, kw in MATRIX_ENV_KWARGS.items()},
    **{env_id: partial(gridworld.parallel_env, **kw) for env_id, kw in GRIDWORLD_ENV_KWARGS.items()},
}


class SyncTimeLimit(gymnasium.Wrapper, RecordConstructorArgs):
    """Keep the ``TimeLimit`` of a registered id equal to the horizon of the game it was made with.

    ``gymnasium.make`` wraps every id in ``TimeLimit(spec.max_episode_steps)``,
    the horizon of the id's *default* game. When the env was made with another
    horizon (``env.unwrapped.horizon``, e.g. ``rounds=5`` or a longer game) and
    the limit is still the registered one, this wrapper (added by the spec's
    ``additional_wrappers``) moves the limit to the env's horizon, so the env
    ends episodes itself (``terminated``) and is never cut short. A
    ``max_episode_steps=`` the caller chose (other than the registered value) is
    kept. Steps pass through unchanged.
    """

    def __init__(self, env: gymnasium.Env):
        RecordConstructorArgs.__init__(self)
        gymnasium.Wrapper.__init__(self, env)
        horizon = getattr(env.unwrapped, "horizon", None)
        spec = env.unwrapped.spec
        registered = gymnasium.registry.get(spec.id) if spec is not None else None
        if horizon is None or registered is None or registered.max_episode_steps is None:
            return
        inner = env
        while isinstance(inner, gymnasium.Wrapper) and not isinstance(inner, TimeLimit):
            inner = inner.env
        if (isinstance(inner, TimeLimit) and inner._max_episode_steps == registered.max_episode_steps
                and horizon != registered.max_episode_steps):
            inner._max_episode_steps = int(horizon)
            inner._cached_spec = None


#: the spec entry that adds :class:`SyncTimeLimit` (after ``TimeLimit``) to every prefgym id
HORIZON_WRAPPER = WrapperSpec(name="SyncTimeLimit", entry_point="prefgym.envs.registration:SyncTimeLimit",
                              kwargs={})


def preload_in_forkserver(module: str = "prefgym.envs") -> None:
    """Have forkserver workers import ``module``, so that the ``prefgym/`` ids exist in them.

    SB3's ``SubprocVecEnv`` starts its workers by ``forkserver`` where it can
    (Gymnasium's async vector env too, from Python 3.14 on Linux); a worker makes
    its env with ``gymnasium.make(id)``, which only knows the ids of the modules
    it has imported. Python's default preload list is ``["__main__"]``, which
    imports nothing from a notebook, ``python -c`` or pytest. The module is
    appended to the list (taking effect when the fork server next starts).
    Under ``spawn`` (the default on macOS and Windows) the worker imports the
    main script, so a script that imports prefgym works; from a notebook, pass
    ``"prefgym.envs:prefgym/RPS-v0"`` (Gymnasium's ``module:id`` form) or
    ``start_method="fork"``.
    """
    try:
        from multiprocessing import forkserver

        modules = list(getattr(forkserver._forkserver, "_preload_modules", None) or ["__main__"])
        if module not in modules:
            forkserver.set_forkserver_preload([*modules, module])
    except (ImportError, AttributeError):  # no forkserver on this platform
        pass


def register_envs() -> None:
    """Register every id with Gymnasium; ids already registered are left alone."""
    preload_in_forkserver()
    for env_id, kwargs in ENV_KWARGS.items():
        if env_id not in gymnasium.registry:
            # the envs terminate themselves after ``rounds`` / ``H`` steps; the spec records that horizon
            gymnasium.register(id=env_id, entry_point=ENTRY_POINTS[env_id], kwargs=dict(kwargs),
                               max_episode_steps=MAX_EPISODE_STEPS[env_id],
                               additional_wrappers=(HORIZON_WRAPPER,))


def make_parallel(env_id: str, **kwargs) -> ParallelEnv:
    """The PettingZoo parallel env of a registered id, e.g. ``make_parallel("prefgym/RPS-v0")``."""
    try:
        factory = PARALLEL_ENVS[env_id]
    except KeyError:
        known = sorted(PARALLEL_ENVS)
        raise ValueError(f"unknown parallel env id {env_id!r}; choose from {known}") from None
    return factory(**kwargs)


def make_aec(env_id: str, **kwargs) -> AECEnv:
    """The PettingZoo AEC env of a registered id: ``parallel_to_aec(make_parallel(env_id, **kwargs))``.

    The players still move simultaneously: the AEC env collects ``player_0``'s
    action, then ``player_1``'s, and steps the game once both are in.
    """
    return parallel_to_aec(make_parallel(env_id, **kwargs))
