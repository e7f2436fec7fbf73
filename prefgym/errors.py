"""prefgym's own exceptions: one type per kind of mistake.

Each subclasses the built-in exception a caller would already catch
(``ValueError``, ``TypeError``, ``FileExistsError``, ``ImportError``), so
``except ValueError`` keeps working, and all of them subclass
:class:`PrefgymError`, so ``except PrefgymError`` catches every mistake that
prefgym diagnosed itself. Messages name the argument, the value and what is
allowed; the CLI prints them as one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "AgentLoadError",
    "DatasetError",
    "InvalidActionError",
    "InvalidArgumentError",
    "InvalidGameError",
    "InvalidPolicyError",
    "InvalidTypeError",
    "MissingExtraError",
    "OutputExistsError",
    "PrefgymError",
    "SolverLimitError",
    "UnsafeFileError",
]


class PrefgymError(Exception):
    """Base class of every error that prefgym raises on purpose."""


class InvalidArgumentError(PrefgymError, ValueError):
    """An argument has the right type but a value outside what is allowed."""


class InvalidTypeError(PrefgymError, TypeError):
    """An argument has a type that is not accepted."""


class InvalidGameError(InvalidArgumentError):
    """A preference matrix, payoff or game description is malformed."""


class InvalidPolicyError(InvalidArgumentError):
    """A policy is not a probability vector (or batch of them) of the right shape."""


class InvalidActionError(InvalidArgumentError):
    """An environment was given an action outside its action space, or stepped after its end."""


class AgentLoadError(InvalidArgumentError):
    """A saved agent, trainer or checkpoint cannot be read: missing, truncated, corrupted or foreign."""


class DatasetError(InvalidArgumentError):
    """A data set is missing, malformed or inconsistent."""


class UnsafeFileError(PrefgymError, PermissionError):
    """Reading this file would run code from it, and the caller did not opt in."""


class OutputExistsError(PrefgymError, FileExistsError):
    """An output folder or file already holds a run and overwriting was not asked for."""


class SolverLimitError(PrefgymError, TimeoutError):
    """An exact solver ran past its time limit or was given a game too big for it."""


class MissingExtraError(PrefgymError, ImportError):
    """A feature needs an optional dependency (an extra) that is not installed."""
