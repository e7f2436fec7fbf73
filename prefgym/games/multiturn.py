"""Multi-turn menu games over text: tasks, per-state menus of replies, states and transcripts.

A :class:`MultiTurnGame` is 001's Markov preference game over text restricted to menus:
task ``i`` starts at the open state ``s_1``; at turn ``h`` a player picks one of the ``N``
replies of the state's menu, ``menu_at(i, replies so far)``, and the next state is the
conversation (or solution) with that reply written. The preference between two reply
sequences of the same task is a pairwise judge's on their transcripts (001 Sec. 4.2).

This module is the torch-free, text-format-free part: menus, enumeration of the
``N^H`` episodes, fingerprints and the :class:`~prefgym.games.protocol.PreferenceGame`
face. How a state, a transcript and a judge's context are written is left to the hooks
that a subclass implements: the dialogue game
:class:`~prefgym.data.multiturn.MultiTurnMenuProblem` and the step-by-step reasoning game
:class:`~prefgym.agents.llm.reasoning_menu.ReasoningMenuProblem`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from prefgym.errors import InvalidArgumentError, InvalidGameError, InvalidTypeError

__all__ = ["MultiTurnGame"]


class MultiTurnGame:
    """Tasks, the menu of every state, and the states and transcripts of their episodes.

    A state ``s_h`` of task ``i`` is given by the replies ``y_1 .. y_{h-1}`` chosen so far, and
    its menu by :meth:`menu_at` ``(i, replies)``: it may depend on the earlier replies (a
    reasoning step builds on the values the policy wrote before). A subclass fixes the episode
    format by implementing the hooks :meth:`state`, :meth:`transcript`, :meth:`context`,
    :meth:`locate` and :meth:`reply_correct` (and :meth:`task_horizon`, :meth:`task_menu`
    where the defaults do not fit).

    Parameters
    ----------
    tasks
        Tasks with the same horizon ``H`` and distinct first states.
    menu
        ``menu(task, h) -> replies``: a per-turn menu that does not depend on the earlier
        replies (used by the default :meth:`task_menu`). Every state of every task must
        offer the same number ``N >= 2`` of distinct replies (checked on all
        ``1 + N + ... + N^(H-1)`` states of every task).
    judge
        Optional pairwise judge (``prob(contexts, a, b)``) that defines
        :meth:`preference_between`; the trainers and evaluators take their judge separately.
    """

    #: whether a state's menu may depend on the earlier replies (not only on the turn)
    reply_dependent: ClassVar[bool] = False

    #: :attr:`PreferenceGame.kind <prefgym.games.protocol.PreferenceGame.kind>`
    kind = "multiturn"

    def __init__(self, tasks: Sequence, menu: Callable[[Any, int], Sequence[str]] | None = None, *,
                 judge: Any = None):
        self._menu_fn = menu
        self.judge = judge
        self.tasks = list(tasks)
        if not self.tasks:
            raise InvalidGameError("a problem needs at least one task")
        horizons = {self.task_horizon(t) for t in self.tasks}
        if len(horizons) != 1:
            raise InvalidGameError(f"all tasks must have the same horizon; got {sorted(horizons)}")
        self.horizon = horizons.pop()
        if self.horizon < 1:
            raise InvalidGameError(f"the horizon must be >= 1; got {self.horizon}")
        self._menus: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}
        self.n = 0
        self.n = len(self.menu_at(0, ()))
        if self.n < 2:
            raise InvalidGameError(f"every menu needs N >= 2 replies; got {self.n}")
        self._paths = [self._enumerate(i) for i in range(len(self.tasks))]  # validates every menu
        self.first_states = [self.state(i, ()) for i in range(len(self.tasks))]
        if len(set(self.first_states)) != len(self.first_states):
            raise InvalidGameError("tasks must have distinct first states (first messages / questions)")
        self._by_first = {s: i for i, s in enumerate(self.first_states)}

    def __len__(self) -> int:
        return len(self.tasks)

    # ------------------------------------------------------------ menus and episodes
    def menu_at(self, i: int, replies: Sequence[str] | int) -> tuple[str, ...]:
        """The menu of task ``i`` at the state reached by ``replies`` (turn ``h = len(replies) + 1``).

        ``menu_at(i, h)`` with an int turn ``h`` (1-based) is accepted for problems whose menus
        do not depend on the earlier replies (``reply_dependent = False``).
        """
        if isinstance(replies, (int, np.integer)):
            h = int(replies)
            if self.reply_dependent:
                raise InvalidTypeError(f"{type(self).__name__}'s menus depend on the earlier replies; "
                                       "call menu_at(i, replies) with the replies so far")
            if not 1 <= h <= self.horizon:
                raise InvalidArgumentError(f"turn h must be in 1..{self.horizon}; got {h}")
            replies = self.replies(i, (0,) * (h - 1))
        key = (int(i), tuple(replies))
        menu = self._menus.get(key)
        if menu is None:
            if not 0 <= key[0] < len(self.tasks):
                raise IndexError(f"task index {i} out of range for {len(self.tasks)} tasks")
            if len(key[1]) >= self.horizon:
                raise InvalidArgumentError(f"{len(key[1])} replies already end the episode "
                                           f"(horizon {self.horizon})")
            menu = tuple(self.task_menu(key[0], key[1]))
            if self.n and len(menu) != self.n:
                raise InvalidGameError(f"every menu needs the same size N = {self.n}; task {key[0]} after "
                                       f"{list(key[1])} offers {len(menu)}")
            if len(set(menu)) != len(menu):
                raise InvalidGameError(f"menus must hold distinct replies; got {menu}")
            self._menus[key] = menu
        return menu

    def replies(self, i: int, choice: Sequence[int]) -> tuple[str, ...]:
        """The replies of task ``i`` that pick menu items ``choice[0], choice[1], ...`` in turn."""
        out: list[str] = []
        for c in choice:
            out.append(self.menu_at(i, out)[int(c)])
        return tuple(out)

    def _enumerate(self, i: int) -> list[tuple[str, ...]]:
        paths: list[tuple[str, ...]] = [()]
        for _ in range(self.horizon):
            paths = [(*p, y) for p in paths for y in self.menu_at(i, p)]
        return paths

    def trajectories(self, i: int) -> list[tuple[str, ...]]:
        """The ``N^H`` reply sequences of task ``i``; ``j`` picks item ``digits_N(j)[h-1]`` at ``h``."""
        return self._paths[i]

    def fingerprint(self) -> str:
        """A SHA-256 digest of the task ids, the horizon and every state's menu (checks a checkpoint)."""
        h = hashlib.sha256(f"{type(self).__name__}|H={self.horizon}|N={self.n}".encode())
        for i, t in enumerate(self.tasks):
            h.update(f"\x1e{getattr(t, 'id', i)}".encode())
            for path in self._paths[i]:
                for k in range(self.horizon):
                    h.update("\x1f".join(self.menu_at(i, path[:k])).encode())
        return h.hexdigest()

    # ------------------------------------------------------------ the PreferenceGame face
    @property
    def n_actions(self) -> int:
        """``N``: replies offered at every state."""
        return self.n

    def start_states(self) -> tuple[str, ...]:
        """The first state ``s_1`` of every task."""
        return tuple(self.first_states)

    def actions(self, state: str) -> tuple[str, ...]:
        """The menu of an open state (located with :meth:`locate`)."""
        i, replies = self.locate(state)
        return self.menu_at(i, replies)

    def preference_between(self, first, second) -> float:
        """``P(first beats second)`` for two reply sequences ``(i, replies)`` of the same task and length.

        The game's ``judge`` compares ``transcript(i, replies)`` in ``context(i, h)``,
        ``h = len(replies)``: the step preference ``P([s_h, a] > [s_h, a'])`` of 001 Sec. 4.2 when
        the sequences share their first ``h - 1`` replies, the whole-episode preference at ``h = H``.
        """
        if self.judge is None:
            raise InvalidArgumentError(f"{type(self).__name__} has no judge; pass judge= to compare replies")
        (i, a), (j, b) = (self._episode(x, name) for x, name in ((first, "first"), (second, "second")))
        if i != j or len(a) != len(b):
            raise InvalidArgumentError(f"first and second must be replies of one task at one turn; got "
                                       f"task {i} after {len(a)} replies and task {j} after {len(b)}")
        ctx = self.context(i, len(a))
        return float(np.asarray(self.judge.prob([ctx], [self.transcript(i, a)], [self.transcript(i, b)]))[0])

    def exploitability(self, policy) -> None:
        """``None``: the game's policies are language models, evaluated exactly in the agents layer.

        See :func:`~prefgym.agents.llm.multiturn.trajectory_distributions` and
        :func:`~prefgym.agents.llm.multiturn.dialogue_win_rate`.
        """
        return None

    def _episode(self, x, name: str) -> tuple[int, tuple[str, ...]]:
        if not isinstance(x, tuple | list) or len(x) != 2 or isinstance(x[1], str):
            raise InvalidArgumentError(f"{name} must be (task index, replies); got {x!r:.80}")
        i, replies = int(x[0]), tuple(x[1])
        if not 0 <= i < len(self.tasks):
            raise InvalidArgumentError(f"{name}'s task index must be in 0..{len(self.tasks) - 1}; got {i}")
        if not 1 <= len(replies) <= self.horizon:
            raise InvalidArgumentError(f"{name} must hold 1..{self.horizon} replies; got {len(replies)}")
        return i, replies

    # ------------------------------------------------------------ hooks
    def task_horizon(self, task) -> int:
        """The number of turns of ``task`` (``task.horizon``)."""
        return task.horizon

    def task_menu(self, i: int, replies: tuple[str, ...]) -> Sequence[str]:
        """The menu of task ``i`` after ``replies``: here ``menu(task, h)``, whatever the replies."""
        if self._menu_fn is None:
            raise NotImplementedError(f"{type(self).__name__} needs a menu= or a task_menu() of its own")
        return self._menu_fn(self.tasks[i], len(replies) + 1)

    def state(self, i: int, replies: Sequence[str]) -> str:
        """``s_h`` of task ``i`` after ``replies`` (``h = len(replies) + 1``)."""
        raise NotImplementedError

    def transcript(self, i: int, replies: Sequence[str]) -> str:
        """The closed transcript of turns ``1..len(replies)`` (what the judge compares)."""
        raise NotImplementedError

    def context(self, i: int, h: int) -> str:
        """The judge's context at turn ``h``."""
        raise NotImplementedError

    def reply_prefix(self, state: str) -> str:
        """The text between an open state and its reply, as the next state writes it (``" "``).

        The LM scores ``reply_prefix(state) + reply`` after ``state``
        (:func:`~prefgym.agents.llm.multiturn.source.menu_log_probs`), so what it scores is
        the text of the state the reply leads to.
        """
        return " "

    def locate(self, state: str) -> tuple[int, list[str]]:
        """The task index and earlier replies of an open state."""
        raise NotImplementedError

    def reply_correct(self, i: int, replies: Sequence[str]) -> bool:
        """Whether the last of ``replies`` is correct at its turn."""
        raise NotImplementedError
