"""Gymnasium / PettingZoo environments; importing this registers the ``prefgym/`` ids."""

from prefgym.envs.games import env_make_kwargs, game_of
from prefgym.envs.gridworld import GridworldEnv, GridworldParallelEnv
from prefgym.envs.gridworld import aec_env as gridworld_aec_env
from prefgym.envs.gridworld import parallel_env as gridworld_parallel_env
from prefgym.envs.matrix import (
    MatrixGameEnv,
    MatrixGameParallelEnv,
    aec_env,
    parallel_env,
)
from prefgym.envs.registration import PARALLEL_ENVS, make_aec, make_parallel, register_envs
from prefgym.envs.token_view import TokenIdView

register_envs()

from prefgym.envs.language_registration import register_language_envs  # noqa: E402

PARALLEL_ENVS.update(register_language_envs())

from prefgym.envs.mujoco import (  # noqa: E402
    ControlPreferenceEnv,
    ControlPreferenceParallelEnv,
    LearnedRewardWrapper,
    PreferenceFeedback,
    register_mujoco_envs,
)

PARALLEL_ENVS.update(register_mujoco_envs())

__all__ = [
    "ControlPreferenceEnv",
    "ControlPreferenceParallelEnv",
    "LearnedRewardWrapper",
    "PreferenceFeedback",
    "GridworldEnv",
    "GridworldParallelEnv",
    "MatrixGameEnv",
    "MatrixGameParallelEnv",
    "PARALLEL_ENVS",
    "TokenIdView",
    "aec_env",
    "env_make_kwargs",
    "game_of",
    "gridworld_aec_env",
    "gridworld_parallel_env",
    "make_aec",
    "make_parallel",
    "parallel_env",
    "register_envs",
]
