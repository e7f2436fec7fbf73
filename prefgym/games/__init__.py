"""Preference games with exact solvers: matrix games, tabular Markov games, multi-turn menu games.

Every game satisfies :class:`~prefgym.games.protocol.PreferenceGame`.
"""

from prefgym.games.gridworld import (
    GRIDWORLD_GENERATORS,
    GridLayout,
    cyclic_goals_gridworld,
    intermediate_preference_gridworld,
    make_gridworld,
    random_gridworld,
)
from prefgym.games.markov import TabularMarkovGame
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
from prefgym.games.multiturn import MultiTurnGame
from prefgym.games.protocol import GAME_KINDS, PreferenceGame
from prefgym.games.step_preference import DenseStepPreference, FeatureStepPreference, StepPreference

__all__ = [
    "GAME_KINDS",
    "GENERATORS",
    "GRIDWORLD_GENERATORS",
    "DenseStepPreference",
    "FeatureStepPreference",
    "GridLayout",
    "MatrixGame",
    "MultiTurnGame",
    "PreferenceGame",
    "StepPreference",
    "TabularMarkovGame",
    "cyclic",
    "cyclic_goals_gridworld",
    "intermediate_preference_gridworld",
    "make_game",
    "make_gridworld",
    "planted_nash",
    "random_gridworld",
    "random_skew_symmetric",
    "rps",
    "transitive",
]
