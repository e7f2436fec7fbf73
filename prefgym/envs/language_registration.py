"""Gymnasium registration of the language envs, and their PettingZoo twins.

>>> import gymnasium
>>> from prefgym.envs.language_registration import register_language_envs
>>> factories = register_language_envs()
>>> env = gymnasium.make("prefgym/Dialogue-v0")           # DialogueEnv vs a fixed opponent
>>> par = factories["prefgym/Reasoning-v0"](preference="average")  # ReasoningParallelEnv
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium
from pettingzoo import AECEnv, ParallelEnv

from prefgym.envs import dialogue, reasoning

__all__ = [
    "LANGUAGE_AEC_ENVS",
    "LANGUAGE_ENV_ENTRY_POINTS",
    "LANGUAGE_MAX_EPISODE_STEPS",
    "LANGUAGE_PARALLEL_ENVS",
    "register_language_envs",
]

LANGUAGE_ENV_ENTRY_POINTS: dict[str, str] = {
    "prefgym/Dialogue-v0": "prefgym.envs.dialogue:DialogueEnv",
    "prefgym/Reasoning-v0": "prefgym.envs.reasoning:ReasoningEnv",
}

# The longest horizon of each id's default task set; a test checks them against the made envs.
LANGUAGE_MAX_EPISODE_STEPS: dict[str, int] = {"prefgym/Dialogue-v0": 4, "prefgym/Reasoning-v0": 8}

LANGUAGE_PARALLEL_ENVS: dict[str, Callable[..., ParallelEnv]] = {
    "prefgym/Dialogue-v0": dialogue.parallel_env,
    "prefgym/Reasoning-v0": reasoning.parallel_env,
}

LANGUAGE_AEC_ENVS: dict[str, Callable[..., AECEnv]] = {
    "prefgym/Dialogue-v0": dialogue.aec_env,
    "prefgym/Reasoning-v0": reasoning.aec_env,
}


def register_language_envs() -> dict[str, Callable[..., ParallelEnv]]:
    """Register ``prefgym/Dialogue-v0`` and ``prefgym/Reasoning-v0`` with Gymnasium (idempotent).

    Ids already registered are left alone. Returns the PettingZoo parallel
    factories by id (a new dict each call), ready for
    ``PARALLEL_ENVS.update(...)``; the AEC factories are
    :data:`LANGUAGE_AEC_ENVS`.
    """
    from prefgym.envs.registration import HORIZON_WRAPPER

    for env_id, entry_point in LANGUAGE_ENV_ENTRY_POINTS.items():
        if env_id not in gymnasium.registry:
            # the games end themselves; the spec records the default task set's longest horizon
            gymnasium.register(id=env_id, entry_point=entry_point,
                               max_episode_steps=LANGUAGE_MAX_EPISODE_STEPS[env_id],
                               additional_wrappers=(HORIZON_WRAPPER,))
    return dict(LANGUAGE_PARALLEL_ENVS)
