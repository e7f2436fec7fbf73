"""Preference games with exact solvers."""

from prefgym.games.gridworld import (
    GRIDWORLD_GENERATORS,
    cyclic_goals_gridworld,
    intermediate_preference_gridworld,
    make_gridworld,
)
from prefgym.games.matrix import (
    GENERATORS,
    MatrixGame,
    cyclic,
    make_game,
    planted_nash,
    random_skew_symmetric,
    rps,
    transitive,
)

__all__ = [
    "GENERATORS",
    "MatrixGame",
    "cyclic",
    "make_game",
    "planted_nash",
    "random_skew_symmetric",
    "rps",
    "transitive",
    "GRIDWORLD_GENERATORS",
    "cyclic_goals_gridworld",
    "intermediate_preference_gridworld",
    "make_gridworld",
]
