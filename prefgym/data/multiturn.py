"""The dialogue game: a multi-turn menu game over dialogue tasks (turn menus, transcripts).

:class:`MultiTurnMenuProblem` is :class:`~prefgym.games.multiturn.MultiTurnGame` with the
dialogue's text format: a state is ``format_dialogue`` of the turns so far with the
assistant's turn left open, the transcript what a dialogue judge compares, and the menu of
every turn :func:`dialogue_turn_menu` (a correct reply, a distractor, an abstention).
Torch-free; the LM trainers and exact evaluators on it are in
:mod:`prefgym.agents.llm.multiturn`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefgym.data.dialogue import DialogueTask, parse_dialogue_transcript
from prefgym.games.multiturn import MultiTurnGame
from prefgym.llm.base import ASSISTANT, format_dialogue

__all__ = ["ACKNOWLEDGEMENTS", "UNSURE", "MultiTurnMenuProblem", "dialogue_turn_menu"]

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


class MultiTurnMenuProblem(MultiTurnGame):
    """The dialogue game: tasks, turn menus, dialogue states and transcripts.

    The one abstraction :class:`~prefgym.agents.llm.multiturn.MultiTurnMenuSource` and the
    exact evaluators use (see :class:`~prefgym.games.multiturn.MultiTurnGame` for menus and
    episodes). A subclass changes the episode format by overriding the hooks
    :meth:`task_horizon`, :meth:`task_menu`, :meth:`state`, :meth:`transcript`,
    :meth:`context`, :meth:`locate` and :meth:`reply_correct` (as
    :class:`~prefgym.agents.llm.reasoning_menu.ReasoningMenuProblem` does).

    Parameters
    ----------
    tasks
        Dialogue tasks with the same horizon ``H`` and distinct first messages.
    menu
        ``menu(task, h) -> replies`` (default :func:`dialogue_turn_menu`): a per-turn menu
        that does not depend on the earlier replies. Every state of every task must offer
        the same number ``N >= 2`` of distinct replies.
    judge
        Optional pairwise judge defining :meth:`preference_between` (e.g.
        ``DialogueTaskJudge(tasks, scope="all")``).
    """

    def __init__(self, tasks: Sequence,
                 menu: Callable[[DialogueTask, int], Sequence[str]] | None = dialogue_turn_menu, *,
                 judge: Any = None):
        super().__init__(tasks, menu, judge=judge)

    # ------------------------------------------------------------ hooks (the dialogue problem)
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
