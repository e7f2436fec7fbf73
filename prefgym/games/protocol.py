"""The one protocol every preference game of prefgym satisfies.

A preference game is a symmetric two-player constant-sum game whose payoff is a
preference ``P(x beats y)`` between the two players' moves (001 Sec. 2, 002 Sec. 2).
Three kinds satisfy :class:`PreferenceGame`:

===================================================  ===============  =====================================
game                                                  states           actions at a state
===================================================  ===============  =====================================
:class:`~prefgym.games.matrix.MatrixGame`             one, ``0``       ``0 .. n - 1``
:class:`~prefgym.games.markov.TabularMarkovGame`      ``0 .. S - 1``   ``0 .. A - 1``
:class:`~prefgym.games.multiturn.MultiTurnGame`       open transcripts the ``N`` replies of the state's menu
===================================================  ===============  =====================================

``preference_between(first, second)`` is ``P(first beats second)`` between two
moves made at the same step: actions ``a, b`` of a matrix game, step pairs
``(h, s, a), (h, s', a')`` of a Markov game, reply sequences ``(i, replies)`` of a
multi-turn game's task ``i`` (judged by the game's ``judge``).
``exploitability(policy)`` is the exact ``max_pi' P(pi' > policy) - 1/2`` summed over
the horizon where the game can compute it, and ``None`` where it cannot (a multi-turn
game's policies are language models; their exact evaluators live with them in
:mod:`prefgym.agents.llm.multiturn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["GAME_KINDS", "PreferenceGame"]

#: the values of :attr:`PreferenceGame.kind`
GAME_KINDS = ("matrix", "markov", "multiturn")


@runtime_checkable
class PreferenceGame(Protocol):
    """What every preference game has (see the module docstring for each kind).

    ``isinstance(obj, PreferenceGame)`` checks that the members exist, not their
    signatures (``typing.runtime_checkable``).
    """

    #: one of :data:`GAME_KINDS`
    kind: str

    @property
    def horizon(self) -> int:
        """Moves per episode (``1`` for a matrix game)."""
        ...

    @property
    def n_actions(self) -> int:
        """Actions (replies) offered at every state."""
        ...

    def start_states(self) -> tuple[Any, ...]:
        """The states an episode can start from."""
        ...

    def actions(self, state: Any) -> Sequence[Any]:
        """The actions (replies) offered at ``state``."""
        ...

    def preference_between(self, first: Any, second: Any) -> Any:
        """``P(first beats second)`` for two moves made at the same step."""
        ...

    def exploitability(self, policy: Any) -> Any:
        """Exact ``max_pi' P(pi' > policy) - 1/2`` (over the horizon); ``None`` where none exists."""
        ...
