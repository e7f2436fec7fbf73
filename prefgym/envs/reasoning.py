"""Chain-of-thought reasoning as a Markov preference game (001, Example 2 and Section 4.3).

Both players get the same question ``x_1`` (later ``x_h`` are empty) and write
a solution one line at a time: an action is one reasoning step. A player
finishes when it writes a final-answer line (``"Answer: 42"``, ``"#### 42"``
or ``\\boxed{42}``, see :func:`~prefgym.data.reasoning.is_final_line`) or
after ``horizon`` steps. A finished player's later steps are empty: it stays
in the game, its actions are ignored, and the judges compare its unchanged
solution with the other's. The game ends when both have finished or at the
horizon ``H``; ending early at step ``k`` adds the ``H - k`` remaining tie
steps (``1/2`` each, 001 App. H) to the last reward, so returns sum to ``H``.

What the judges see
-------------------
*context* = the question; *responses* = each player's solution so far, its
steps joined by newlines (``[s_h, a_h]`` without the shared question).

- ``step_judge`` (intermediate preference; default
  :class:`~prefgym.judges.tasks.ArithmeticStepJudge`, a step verifier:
  exact for the shipped arithmetic problems);
- ``judge`` (terminal preference; default
  :class:`~prefgym.judges.tasks.FinalAnswerJudge` against the task's
  reference answer).

``preference`` defaults to ``"terminal"``, 001's setting for math (App. G.2:
"terminal reward only"; Table 7 compares it with intermediate). Observations
are :func:`~prefgym.data.reasoning.format_reasoning` prompts
(``"User: <question>\\nAssistant: <steps so far>"``).

Faces: :class:`ReasoningParallelEnv` (PettingZoo parallel), :func:`aec_env`
(PettingZoo AEC) and :class:`ReasoningEnv` (Gymnasium, against a fixed
opponent, id ``prefgym/Reasoning-v0``). Actions are ``Text`` over printable
ASCII without newline: surrounding whitespace is stripped and a newline
inside a step is a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pettingzoo.utils import parallel_to_aec

from prefgym.data.reasoning import (
    ReasoningTask,
    ScriptedSolver,
    format_reasoning,
    is_final_line,
    load_reasoning_tasks,
    make_arithmetic_tasks,
)
from prefgym.envs.text_game import (
    RENDER_MODES,
    TEXT_CHARSET,
    TextGameCore,
    TextParallelEnv,
    TextSingleAgentEnv,
    _check_length,
    sanitize_task_text,
)
from prefgym.judges.base import PairwiseJudge
from prefgym.judges.tasks import ArithmeticStepJudge, FinalAnswerJudge
from prefgym.llm.base import TextGenerator

__all__ = [
    "ReasoningEnv",
    "ReasoningGame",
    "ReasoningParallelEnv",
    "aec_env",
    "parallel_env",
    "resolve_reasoning_tasks",
]

ReasoningFormatter = Callable[[str, Sequence[str]], str]


def resolve_reasoning_tasks(
    tasks: Any = None, synthetic_kwargs: dict | None = None, task_format: str = "auto"
) -> list[ReasoningTask]:
    """The task list from ``None`` (generated arithmetic), a JSONL path, a ``datasets`` object or tasks."""
    if tasks is None:
        return make_arithmetic_tasks(**(synthetic_kwargs or {}))
    if synthetic_kwargs:
        raise ValueError("synthetic_kwargs only applies when tasks is None")
    if isinstance(tasks, (str, Path)):
        return load_reasoning_tasks(tasks, task_format)
    if isinstance(tasks, Sequence) and tasks and all(isinstance(t, ReasoningTask) for t in tasks):
        return list(tasks)
    if isinstance(tasks, Sequence) and not tasks:
        raise ValueError("the task set is empty")
    return load_reasoning_tasks(tasks, task_format)


class ReasoningGame(TextGameCore):
    """The reasoning game's rules; the envs below wrap it.

    Parameters
    ----------
    tasks
        ``None`` (default: :func:`~prefgym.data.reasoning.make_arithmetic_tasks`
        with ``synthetic_kwargs``), a path to a GSM8K- or MATH-format JSONL file,
        a ``datasets.Dataset``, or a sequence of
        :class:`~prefgym.data.reasoning.ReasoningTask`.
    synthetic_kwargs
        ``n``, ``seed``, ``min_events``, ``max_events`` of the generator.
    task_format
        ``"auto"``, ``"gsm8k"`` or ``"math"`` for loaded files.
    judge, step_judge
        Judges of final solutions and of every step. If only one is given it
        serves both. Defaults: ``FinalAnswerJudge(tasks, eps=judge_eps)`` and
        ``ArithmeticStepJudge(eps=judge_eps, grounded=grounded)``.
    preference
        ``"terminal"`` (default), ``"intermediate"`` or ``"average"``.
    reward_mode
        ``"expected"`` or ``"sample"``.
    horizon
        Most steps per player; default: the longest reference solution plus
        its answer line.
    formatter
        ``formatter(question, steps) -> observation`` (default
        :func:`~prefgym.data.reasoning.format_reasoning`).
    max_step_length
        Longest step in characters (the action space's ``max_length``);
        default: 256, or the longest reference line if longer.
    context_window, charset, unknown_chars
        As :class:`~prefgym.envs.dialogue.DialogueGame` (actions exclude newline).
    judge_eps, grounded
        Parameters of the default judges.
    """

    multiline_actions = False

    def __init__(
        self,
        tasks: Any = None,
        *,
        synthetic_kwargs: dict | None = None,
        task_format: str = "auto",
        judge: PairwiseJudge | None = None,
        step_judge: PairwiseJudge | None = None,
        preference: str = "terminal",
        reward_mode: str = "expected",
        horizon: int | None = None,
        formatter: ReasoningFormatter = format_reasoning,
        max_step_length: int | None = None,
        context_window: int | None = None,
        charset: str = TEXT_CHARSET,
        unknown_chars: str = "error",
        judge_eps: float = 0.1,
        grounded: bool = True,
    ):
        task_list = resolve_reasoning_tasks(tasks, synthetic_kwargs, task_format)
        task_list = [self._sanitize(t, charset, unknown_chars) for t in task_list]
        if judge is None and step_judge is None:
            judge = FinalAnswerJudge(task_list, eps=judge_eps)
            step_judge = ArithmeticStepJudge(eps=judge_eps, grounded=grounded)
        judge = step_judge if judge is None else judge
        step_judge = judge if step_judge is None else step_judge
        if not callable(formatter):
            raise TypeError(f"formatter must be callable; got {type(formatter).__name__}")
        self.formatter = formatter
        if horizon is None:
            horizon = max(len(t.steps) + 1 for t in task_list)
        self.max_steps = _check_length("horizon", horizon)
        if max_step_length is None:
            longest = max(len(s) for t in task_list for s in (*t.steps, f"Answer: {t.answer}"))
            max_step_length = max(256, longest)
        super().__init__(
            task_list, judge=judge, step_judge=step_judge, preference=preference, reward_mode=reward_mode,
            max_response_length=max_step_length, context_window=context_window, charset=charset,
            unknown_chars=unknown_chars,
        )

    @staticmethod
    def _sanitize(task: ReasoningTask, charset: str, unknown_chars: str) -> ReasoningTask:
        q = sanitize_task_text(task.question, f"task {task.id!r} question", charset, unknown_chars)
        steps = tuple(
            sanitize_task_text(s, f"task {task.id!r} reference step {i + 1}", charset, unknown_chars)
            for i, s in enumerate(task.steps)
        )
        if (q, steps) == (task.question, task.steps):
            return task
        return dataclasses.replace(task, question=q, steps=steps)

    def horizon(self, task: ReasoningTask) -> int:
        return self.max_steps

    def is_final(self, utterance: str) -> bool:
        return is_final_line(utterance)

    def observation(self, task: ReasoningTask, history: Sequence[str], done: bool) -> str:
        return self.formatter(task.question, list(history))

    def judge_inputs(self, task: ReasoningTask, histories, turn: int) -> tuple[str, str, str]:
        return task.question, "\n".join(histories[0]), "\n".join(histories[1])

    def worst_case_length(self, task: ReasoningTask) -> int:
        steps = ["x" * self.max_response_length] * self.max_steps
        return max(len(self.observation(task, steps[:k], False)) for k in range(self.max_steps + 1))


def _action_charset(charset: str) -> str:
    return charset.replace("\n", "")


class ReasoningParallelEnv(TextParallelEnv):
    """PettingZoo parallel reasoning game; keyword arguments as :class:`ReasoningGame`.

    See :class:`~prefgym.envs.text_game.TextParallelEnv` for infos and task
    choice; ``infos[agent]["finished"]`` tells a player its answer is in (its
    later actions are ignored; send ``""``).
    """

    metadata = {"name": "prefgym_reasoning_v0", "render_modes": RENDER_MODES, "render_fps": 1,
                "is_parallelizable": True}

    def __init__(self, tasks: Any = None, *, render_mode: str | None = None, **kwargs):
        core = ReasoningGame(tasks, **kwargs)
        super().__init__(core, action_charset=_action_charset(core.charset), render_mode=render_mode)


class ReasoningEnv(TextSingleAgentEnv):
    """Gymnasium reasoning game: the agent (``player_0``) against a fixed opponent.

    Parameters
    ----------
    tasks, **kwargs
        As :class:`ReasoningGame`.
    opponent
        A :class:`~prefgym.llm.base.TextGenerator` writing one step per call
        from its own observation (an ``LMPolicy`` works unchanged). Default
        :class:`~prefgym.data.reasoning.ScriptedSolver` over the env's tasks
        with ``error_rate=opponent_error_rate``.
    opponent_error_rate
        Error rate of the default opponent (default 0.2).
    render_mode
        ``None``, ``"ansi"`` or ``"rgb_array"`` (both transcripts as a picture).

    Notes
    -----
    The episode ends when the agent gives its answer (the opponent's remaining
    steps are played at once; their rewards join this step's) or at the horizon.
    """

    def __init__(self, tasks: Any = None, *, opponent: TextGenerator | None = None,
                 opponent_error_rate: float = 0.2, render_mode: str | None = None, **kwargs):
        core = ReasoningGame(tasks, **kwargs)
        if opponent is None:
            opponent = ScriptedSolver(core.tasks, error_rate=opponent_error_rate)
        super().__init__(core, opponent, action_charset=_action_charset(core.charset),
                         render_mode=render_mode)


def parallel_env(**kwargs) -> ReasoningParallelEnv:
    """PettingZoo parallel reasoning env; kwargs as :class:`ReasoningParallelEnv`."""
    return ReasoningParallelEnv(**kwargs)


def aec_env(**kwargs):
    """PettingZoo AEC reasoning env (``parallel_to_aec`` of :func:`parallel_env`: moves stay simultaneous)."""
    return parallel_to_aec(parallel_env(**kwargs))
