"""Preference games with exact solvers."""

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
]
