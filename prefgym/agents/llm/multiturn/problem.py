"""The multi-turn menu problem: tasks, per-turn (or per-step) menus, states and transcripts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from prefgym.data.dialogue import DialogueTask, parse_dialogue_transcript
from prefgym.llm.base import ASSISTANT, format_dialogue

#: replies offered at a turn without reference facts (all accepted by the judge)
ACKNOWLEDGEMENTS = ("OK.", "Ready.", "Sure, go ahead.")
#: the abstaining reply offered at every judged turn (never correct)
UNSURE = "I am not sure, sorry."


def dialogue_turn_menu(task: DialogueTask, h: int) -> tuple[str, ...]:
    """The 3 candidate replies of turn ``h`` (1-based) of a task with references.

    ``("The answer is <references>.", "The answer is <first distractor>.", UNSURE)``, the
    correct and wrong replies of :class:`~prefgym.data.dialogue.SyntheticDialogueSolver`
    plus an abstention; :data:`ACKNOWLEDGEMENTS` at a turn without references.
    """
    if task.references is None:
        raise ValueError(f"task {task.id!r} has no references; its turns have no menu")
    refs = task.references[h - 1]
    if not refs:
        return ACKNOWLEDGEMENTS
    dis = task.distractors[h - 1] if task.distractors else ()
    if not dis:
        raise ValueError(f"task {task.id!r} turn {h} has no distractor to offer")
    return (f"The answer is {' and '.join(refs)}.", f"The answer is {dis[0]}.", UNSURE)


class MultiTurnMenuProblem:
    """Tasks, the menu of every state, and the states and transcripts of their episodes.

    The one abstraction :class:`MultiTurnMenuSource` and the exact evaluators use. A state
    ``s_h`` of task ``i`` is given by the replies ``y_1 .. y_{h-1}`` chosen so far, and its
    menu by :meth:`menu_at` ``(i, replies)``: it may depend on the earlier replies (a
    reasoning step builds on the values the policy wrote before, see
    :class:`~prefgym.agents.llm.reasoning_menu.ReasoningMenuProblem`). This class is the
    dialogue problem; a subclass changes the episode format by overriding the hooks
    :meth:`task_horizon`, :meth:`task_menu`, :meth:`state`, :meth:`transcript`,
    :meth:`context`, :meth:`locate` and :meth:`reply_correct`.

    Parameters
    ----------
    tasks
        Dialogue tasks with the same horizon ``H`` and distinct first messages.
    menu
        ``menu(task, h) -> replies`` (default :func:`dialogue_turn_menu`): a per-turn menu
        that does not depend on the earlier replies. Every state of every task must offer
        the same number ``N >= 2`` of distinct replies (checked on all
        ``1 + N + ... + N^(H-1)`` states of every task).
    """

    #: whether a state's menu may depend on the earlier replies (not only on the turn)
    reply_dependent: ClassVar[bool] = False

    def __init__(self, tasks: Sequence,
                 menu: Callable[[DialogueTask, int], Sequence[str]] = dialogue_turn_menu):
        self._menu_fn = menu
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("a problem needs at least one task")
        horizons = {self.task_horizon(t) for t in self.tasks}
        if len(horizons) != 1:
            raise ValueError(f"all tasks must have the same horizon; got {sorted(horizons)}")
        self.horizon = horizons.pop()
        if self.horizon < 1:
            raise ValueError(f"the horizon must be >= 1; got {self.horizon}")
        self._menus: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}
        self.n = 0
        self.n = len(self.menu_at(0, ()))
        if self.n < 2:
            raise ValueError(f"every menu needs N >= 2 replies; got {self.n}")
        self._paths = [self._enumerate(i) for i in range(len(self.tasks))]  # validates every menu
        self.first_states = [self.state(i, ()) for i in range(len(self.tasks))]
        if len(set(self.first_states)) != len(self.first_states):
            raise ValueError("tasks must have distinct first states (first messages / questions)")
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
                raise TypeError(f"{type(self).__name__}'s menus depend on the earlier replies; "
                                "call menu_at(i, replies) with the replies so far")
            if not 1 <= h <= self.horizon:
                raise ValueError(f"turn h must be in 1..{self.horizon}; got {h}")
            replies = self.replies(i, (0,) * (h - 1))
        key = (int(i), tuple(replies))
        menu = self._menus.get(key)
        if menu is None:
            if not 0 <= key[0] < len(self.tasks):
                raise IndexError(f"task index {i} out of range for {len(self.tasks)} tasks")
            if len(key[1]) >= self.horizon:
                raise ValueError(f"{len(key[1])} replies already end the episode (horizon {self.horizon})")
            menu = tuple(self.task_menu(key[0], key[1]))
            if self.n and len(menu) != self.n:
                raise ValueError(f"every menu needs the same size N = {self.n}; task {key[0]} after "
                                 f"{list(key[1])} offers {len(menu)}")
            if len(set(menu)) != len(menu):
                raise ValueError(f"menus must hold distinct replies; got {menu}")
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

    # ------------------------------------------------------------ hooks (the dialogue problem)
    def task_horizon(self, task) -> int:
        """The number of turns of ``task``."""
        return task.horizon

    def task_menu(self, i: int, replies: tuple[str, ...]) -> Sequence[str]:
        """The menu of task ``i`` after ``replies``: here ``menu(task, h)``, whatever the replies."""
        return self._menu_fn(self.tasks[i], len(replies) + 1)

    def state(self, i: int, replies: Sequence[str]) -> str:
        """``s_h`` of task ``i`` after ``replies`` (``h = len(replies) + 1``): the turn left open."""
        t = self.tasks[i]
        turns = [(x, r) for x, r in zip(t.turns, replies, strict=False)]
        return format_dialogue([*turns, (t.turns[len(replies)], None)])

    def transcript(self, i: int, replies: Sequence[str]) -> str:
        """The closed transcript of turns ``1..len(replies)`` (what the judge compares)."""
        return format_dialogue(list(zip(self.tasks[i].turns, replies, strict=False)))

    def context(self, i: int, h: int) -> str:
        """The judge's context at turn ``h``: the user turns ``x_1..x_h``."""
        return self.tasks[i].context(h)

    def reply_prefix(self, state: str) -> str:
        """The text between an open state and its reply, as the next state writes it (``" "``).

        The LM scores ``reply_prefix(state) + reply`` after ``state``
        (:func:`~prefgym.agents.llm.multiturn.source.menu_log_probs`), so what it scores is
        the text of the state the reply leads to: ``"Assistant: reply"`` in a dialogue.
        """
        return " "

    def locate(self, state: str) -> tuple[int, list[str]]:
        """The task index and earlier replies of an open state."""
        head = state.split(f"\n{ASSISTANT}:", 1)[0] + f"\n{ASSISTANT}:"
        if head not in self._by_first:
            raise ValueError(f"state {state[:80]!r} belongs to no task of this problem")
        i = self._by_first[head]
        replies = parse_dialogue_transcript(self.tasks[i].turns, state)
        if not replies or replies[-1] is not None:
            raise ValueError("a state must end with an open assistant turn")
        return i, list(replies[:-1])

    def reply_correct(self, i: int, replies: Sequence[str]) -> bool:
        """Whether the last of ``replies`` is correct at its turn (``task.reply_correct``)."""
        return bool(self.tasks[i].reply_correct(len(replies), replies[-1]))
