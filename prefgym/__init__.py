"""prefgym: Markov preference games (NLHF) for reinforcement-learning research."""

__version__ = "0.1.0"

from prefgym import envs, preferences  # noqa: F401  (importing envs registers gymnasium ids)
from prefgym.games import MatrixGame

__all__ = ["MatrixGame", "preferences", "__version__"]
