"""Gymnasium / PettingZoo environments; importing this registers the ``prefgym/`` ids."""

from prefgym.envs.matrix import (
    MatrixGameEnv,
    MatrixGameParallelEnv,
    aec_env,
    parallel_env,
)
from prefgym.envs.registration import PARALLEL_ENVS, make_parallel, register_envs

register_envs()

__all__ = [
    "MatrixGameEnv",
    "MatrixGameParallelEnv",
    "PARALLEL_ENVS",
    "aec_env",
    "make_parallel",
    "parallel_env",
    "register_envs",
]
