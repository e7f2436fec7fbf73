"""Multi-turn dialogue as a Markov preference game (001, Example 3 and Section 4.2).

Two players hold the same conversation with a scripted user: at turn ``h``
both receive the user message ``x_h`` of the episode's task and answer it from
their *own* history, ``s_h = [s_{h-1}, a_{h-1}, x_h]`` (001, Section 2.2; the
players never see each other's replies). A judge compares the players'
transcripts ``[s_h, a_h]`` and ``[s'_h, a'_h]``.

What the judge sees
-------------------
A :class:`~prefgym.judges.base.PairwiseJudge` takes one context and two
responses, but the two states differ after turn 1. The env passes

- *context*: the part of the state both players share, the user messages
  ``x_1 .. x_h`` (:meth:`~prefgym.data.dialogue.DialogueTask.context`,
  ``"User: x_1\\nUser: x_2..."``);
- *responses*: each player's whole transcript of turns ``1..h``, rendered by
  ``judge_formatter`` (default :func:`~prefgym.llm.base.format_dialogue`).

so a learned judge (PairRM-style) reads complete conversations and the exact
:class:`~prefgym.judges.tasks.DialogueTaskJudge` can recover every reply.

Rewards follow :mod:`prefgym.envs.text_game`: ``preference="intermediate"``
(default; 001's main setting) judges every turn with ``step_judge``,
``"terminal"`` judges only the final transcripts with ``judge`` (001 Table 8),
``"average"`` both. The game always lasts ``H = len(task.turns)`` turns, so
the two players' returns sum to ``H``.

Faces: :class:`DialogueParallelEnv` (PettingZoo parallel), :func:`aec_env`
(PettingZoo AEC) and :class:`DialogueEnv` (Gymnasium, against a fixed
opponent; id ``prefgym/Dialogue-v0``). Observations and actions are
``gymnasium.spaces.Text`` over printable ASCII plus newline; an action is a
whole reply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pettingzoo.utils import parallel_to_aec

from prefgym.data.dialogue import DialogueTask, FixedReply, load_dialogue_tasks, make_synthetic_dialogue_tasks
from prefgym.envs.text_game import (
    RENDER_MODES,
    TEXT_CHARSET,
    TextGameCore,
    TextParallelEnv,
    TextSingleAgentEnv,
    sanitize_task_text,
)
from prefgym.judges.base import PairwiseJudge
from prefgym.judges.tasks import DialogueTaskJudge
from prefgym.llm.base import TextGenerator, format_dialogue

__all__ = [
    "DialogueEnv",
    "DialogueGame",
    "DialogueParallelEnv",
    "aec_env",
    "parallel_env",
    "resolve_dialogue_tasks",
]

DialogueFormatter = Callable[[Sequence[tuple[str, "str | None"]]], str]


def resolve_dialogue_tasks(tasks: Any = None, synthetic_kwargs: dict | None = None) -> list[DialogueTask]:
    """The task list from ``None`` (the synthetic set), a JSONL path, a ``datasets`` object or tasks."""
    if tasks is None:
        return make_synthetic_dialogue_tasks(**(synthetic_kwargs or {}))
    if synthetic_kwargs:
        raise ValueError("synthetic_kwargs only applies when tasks is None")
    if isinstance(tasks, (str, Path)):
        return load_dialogue_tasks(tasks)
    if isinstance(tasks, Sequence) and tasks and all(isinstance(t, DialogueTask) for t in tasks):
        return list(tasks)
    if isinstance(tasks, Sequence) and not tasks:
        raise ValueError("the task set is empty")
    return load_dialogue_tasks(tasks)


class DialogueGame(TextGameCore):
    """The dialogue game's rules; the envs below wrap it.

    Parameters
    ----------
    tasks
        ``None`` (default: :func:`~prefgym.data.dialogue.make_synthetic_dialogue_tasks`
        with ``synthetic_kwargs``), a path to an MT-bench-101-format JSONL
        file, a ``datasets.Dataset``, or a sequence of
        :class:`~prefgym.data.dialogue.DialogueTask`.
    synthetic_kwargs
        ``n``, ``seed``, ``kinds`` of the synthetic set.
    judge, step_judge
        Judges of the final transcripts and of every turn. If only one is
        given it serves both. If neither, the tasks must have references and
        the exact :class:`~prefgym.judges.tasks.DialogueTaskJudge` is used:
        ``scope="last"`` per turn, ``scope="all"`` for the final transcripts,
        both with ``eps=judge_eps``.
    preference
        ``"intermediate"`` (default), ``"terminal"`` or ``"average"``.
    reward_mode
        ``"expected"`` (the judge's probability) or ``"sample"`` (a Bernoulli label).
    formatter
        Renders a player's ``[(x_1, a_1), ..., (x_h, None)]`` as its observation
        (default :func:`~prefgym.llm.base.format_dialogue`; pass a chat-template
        function for chat models).
    judge_formatter
        Renders complete transcripts for the judge (default ``format_dialogue``,
        which the exact judge requires).
    max_response_length
        Longest reply in characters (after stripping surrounding whitespace);
        the action space's ``max_length``. Longer replies are a ``ValueError``.
    context_window
        Longest observation in characters (the observation space's
        ``max_length``); default: the longest any task can produce. A task
        that could exceed it is a ``ValueError`` at construction.
    charset, unknown_chars
        Allowed characters (default printable ASCII + newline) and what to do
        with others in task texts and replies: ``"error"`` or ``"replace"`` (by ``"?"``).
    judge_eps
        ``eps`` of the default exact judges.
    """

    def __init__(
        self,
        tasks: Any = None,
        *,
        synthetic_kwargs: dict | None = None,
        judge: PairwiseJudge | None = None,
        step_judge: PairwiseJudge | None = None,
        preference: str = "intermediate",
        reward_mode: str = "expected",
        formatter: DialogueFormatter = format_dialogue,
        judge_formatter: DialogueFormatter = format_dialogue,
        max_response_length: int = 256,
        context_window: int | None = None,
        charset: str = TEXT_CHARSET,
        unknown_chars: str = "error",
        judge_eps: float = 0.1,
    ):
        task_list = resolve_dialogue_tasks(tasks, synthetic_kwargs)
        task_list = [self._sanitize(t, charset, unknown_chars) for t in task_list]
        if judge is None and step_judge is None:
            missing = [t.id for t in task_list if not t.has_references]
            if missing:
                raise ValueError(f"tasks without reference facts (e.g. {missing[0]!r}) cannot be judged "
                                 "exactly; pass judge= (a PairwiseJudge over their transcripts)")
            if judge_formatter is not format_dialogue:
                raise ValueError("the default exact judge reads format_dialogue transcripts; keep "
                                 "judge_formatter=format_dialogue or pass a judge")
            step_judge = DialogueTaskJudge(task_list, eps=judge_eps, scope="last")
            judge = DialogueTaskJudge(task_list, eps=judge_eps, scope="all")
        judge = step_judge if judge is None else judge
        step_judge = judge if step_judge is None else step_judge
        for name, f in (("formatter", formatter), ("judge_formatter", judge_formatter)):
            if not callable(f):
                raise TypeError(f"{name} must be callable; got {type(f).__name__}")
        self.formatter, self.judge_formatter = formatter, judge_formatter
        super().__init__(
            task_list, judge=judge, step_judge=step_judge, preference=preference, reward_mode=reward_mode,
            max_response_length=max_response_length, context_window=context_window, charset=charset,
            unknown_chars=unknown_chars,
        )

    @staticmethod
    def _sanitize(task: DialogueTask, charset: str, unknown_chars: str) -> DialogueTask:
        turns = tuple(sanitize_task_text(x, f"task {task.id!r} user turn {i + 1}", charset, unknown_chars)
                      for i, x in enumerate(task.turns))
        return task if turns == task.turns else dataclasses.replace(task, turns=turns)

    def horizon(self, task: DialogueTask) -> int:
        return task.horizon

    def observation(self, task: DialogueTask, history: Sequence[str], done: bool) -> str:
        pairs: list[tuple[str, str | None]] = list(zip(task.turns[: len(history)], history, strict=True))
        if not done:
            pairs.append((task.turns[len(history)], None))
        return self.formatter(pairs)

    def judge_inputs(self, task: DialogueTask, histories, turn: int) -> tuple[str, str, str]:
        t0, t1 = (self.judge_formatter(list(zip(task.turns[:turn], h, strict=True))) for h in histories)
        return task.context(turn), t0, t1

    def worst_case_length(self, task: DialogueTask) -> int:
        replies = ["x" * self.max_response_length] * task.horizon
        lengths = [len(self.observation(task, replies[:h], False)) for h in range(task.horizon)]
        return max([*lengths, len(self.observation(task, replies, True))])


class DialogueParallelEnv(TextParallelEnv):
    """PettingZoo parallel dialogue game; keyword arguments as :class:`DialogueGame`.

    ``player_0`` earns the judge's probability that its transcript beats
    ``player_1``'s (per the preference option) and ``player_1`` the rest.
    See :class:`~prefgym.envs.text_game.TextParallelEnv` for infos and task choice.
    """

    metadata = {"name": "prefgym_dialogue_v0", "render_modes": RENDER_MODES, "render_fps": 1,
                "is_parallelizable": True}

    def __init__(self, tasks: Any = None, *, render_mode: str | None = None, **kwargs):
        core = DialogueGame(tasks, **kwargs)
        super().__init__(core, action_charset=core.charset, render_mode=render_mode)


class DialogueEnv(TextSingleAgentEnv):
    """Gymnasium dialogue game: the agent (``player_0``) against a fixed opponent.

    Parameters
    ----------
    tasks, **kwargs
        As :class:`DialogueGame`.
    opponent
        A :class:`~prefgym.llm.base.TextGenerator` answering its own
        observations (an ``LMPolicy`` works unchanged). Default
        :class:`~prefgym.data.dialogue.FixedReply` (``"I am not sure, sorry."``);
        :class:`~prefgym.data.dialogue.SyntheticDialogueSolver` is a stronger
        scripted opponent for the synthetic tasks.
    render_mode
        ``None``, ``"ansi"`` or ``"rgb_array"`` (both transcripts as a picture).
    """

    def __init__(self, tasks: Any = None, *, opponent: TextGenerator | None = None,
                 render_mode: str | None = None, **kwargs):
        core = DialogueGame(tasks, **kwargs)
        super().__init__(core, FixedReply() if opponent is None else opponent,
                         action_charset=core.charset, render_mode=render_mode)


def parallel_env(**kwargs) -> DialogueParallelEnv:
    """PettingZoo parallel dialogue env; kwargs as :class:`DialogueParallelEnv`."""
    return DialogueParallelEnv(**kwargs)


def aec_env(**kwargs):
    """PettingZoo AEC dialogue env (``parallel_to_aec`` of :func:`parallel_env`: moves stay simultaneous)."""
    return parallel_to_aec(parallel_env(**kwargs))
