"""The update rules' array primitives; they live in :mod:`prefgym.algorithms.rules`."""

from prefgym.algorithms.rules import *  # noqa: F403
from prefgym.algorithms.rules import __all__  # noqa: F401
