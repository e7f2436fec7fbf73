"""Step menus for arithmetic word problems: a multi-turn menu problem whose menus depend on earlier steps.

Setting (001 Example 2: an action is one reasoning step, transitions are deterministic).
A task of :func:`~prefgym.data.reasoning.make_arithmetic_tasks` with ``E`` equation steps
is an episode of ``H = E + 1`` steps: the ``E`` equations, then an ``"Answer: v"`` line.
The state ``s_h`` is the ``Reasoning-v0`` observation
:func:`~prefgym.data.reasoning.format_reasoning` ``(question, steps so far)``.

The menu at ``s_h`` is built from the values *the policy wrote* on its earlier lines, as
:class:`~prefgym.data.reasoning.ScriptedSolver` propagates its own mistakes: with the
program step ``(op, left, right)`` of line ``h`` and ``a, b`` its operands (a literal of the
question, or ``@k``: the right side the policy wrote on line ``k``),

- *correct*: ``"a op b = r"`` with ``r = a op b`` (a valid, grounded step);
- *slip*: ``"a op b = r + 1"`` (ScriptedSolver's wrong line: a false equation);
- *misread operand*: ``"a' op b = a' op b"`` with ``a' = a + d``, ``d >= 1`` the smallest
  such that ``a'`` is neither a number of the question nor a right side written so far (a
  true equation whose left operand is not grounded).

At the answer line, with ``L`` the last right side written: ``"Answer: L"`` (correct),
``"Answer: L+1"`` (slip) and ``"Answer: p"`` (stopping one step early: ``p`` the right side
of the line before the last), or ``"Answer: L+2"`` when ``p`` is ``L``, ``L + 1`` or the
reference answer. So :func:`~prefgym.data.reasoning.check_step` (what
:class:`~prefgym.judges.tasks.ArithmeticStepJudge` scores, with grounding) accepts exactly
one item of every menu, the first (tested). Every mistake only ever increases the
written values (all operands are positive and ``+ - *`` are increasing in their left
operand), so the final answer is correct (``FinalAnswerJudge``) iff every line of the
episode is valid: accuracy is ``P(all H lines correct)``.

Judges. Per step (the one-step Q of 001 Alg. 2): ``ArithmeticStepJudge`` on context =
the question and responses = the lines so far, as ``Reasoning-v0``'s ``step_judge``.
Whole solution (evaluation): ``FinalAnswerJudge`` (001 G.2's terminal preference), exact
over all ``3^H`` solutions with :func:`~prefgym.agents.llm.multiturn.trajectory_win_matrices`;
as a training signal, the terminal Q of
:class:`~prefgym.agents.llm.multiturn.MultiTurnMenuSource` (``q="terminal"``,
``terminal_judge=FinalAnswerJudge(tasks)``): each step continued to the answer line and
the closed solutions compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import ClassVar

import numpy as np

from prefgym.agents.llm.multiturn import MultiTurnMenuProblem
from prefgym.data.reasoning import (
    ReasoningTask,
    answers_match,
    check_step,
    extract_final_answer,
    format_reasoning,
    parse_equation,
    parse_reasoning_prompt,
    question_numbers,
)
from prefgym.llm.base import ASSISTANT

__all__ = ["ReasoningMenuProblem", "arithmetic_menu_tasks", "final_answer_accuracy"]

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _fmt(x: Fraction) -> str:
    if x.denominator != 1:
        raise ValueError(f"step menus need integer values; got {x}")
    return str(x.numerator)


def arithmetic_menu_tasks(n: int, seed: int, equations: int = 2, exclude: Sequence[str] = ()
                          ) -> list[ReasoningTask]:
    """The first ``n`` tasks of ``make_arithmetic_tasks`` (seed ``seed``) with exactly ``equations`` steps.

    Draws problems with ``equations`` events (each one or two equation steps) in growing
    batches and keeps, in order, those with exactly ``equations`` steps and a question not in
    ``exclude``.
    """
    from prefgym.data.reasoning import make_arithmetic_tasks

    if int(n) < 1 or int(equations) < 1:
        raise ValueError(f"need n >= 1 and equations >= 1; got n={n}, equations={equations}")
    events = max(1, int(equations))
    skip = set(exclude)
    for size in (4 * n, 16 * n, 64 * n):
        pool = make_arithmetic_tasks(size, seed=seed, min_events=events, max_events=events)
        out = [t for t in pool if len(t.steps) == equations and t.question not in skip]
        if len(out) >= n:
            return out[:n]
    raise ValueError(f"could not find {n} arithmetic tasks with {equations} equation steps (seed {seed})")


class ReasoningMenuProblem(MultiTurnMenuProblem):
    """Arithmetic word problems as a multi-turn menu problem with step menus (see the module docstring).

    Parameters
    ----------
    tasks
        Generated arithmetic tasks (with a ``program`` of ``+ - *`` steps), all with the same
        number ``E`` of equation steps and distinct questions; the horizon is ``H = E + 1``.
    judge
        Optional pairwise judge defining :meth:`preference_between` (e.g. ``FinalAnswerJudge``).
    """

    reply_dependent: ClassVar[bool] = True

    def __init__(self, tasks: Sequence[ReasoningTask], *, judge=None):
        tasks = list(tasks)
        for t in tasks:
            if t.program is None:
                raise ValueError(f"task {t.id!r} has no program; step menus need generated arithmetic tasks")
            bad = [op for op, *_ in t.program if op not in _OPS]
            if bad:
                raise ValueError(f"task {t.id!r} uses {bad}; step menus support + - * only")
        self._questions = {t.question: i for i, t in enumerate(tasks)}
        self._grounds = [question_numbers(t.question) for t in tasks]
        super().__init__(tasks, menu=None, judge=judge)

    # ------------------------------------------------------------ hooks
    def task_horizon(self, task: ReasoningTask) -> int:
        return len(task.steps) + 1

    def written_values(self, replies: Sequence[str]) -> list[Fraction]:
        """The right sides of the equation lines in ``replies`` (the values the policy wrote)."""
        out = []
        for r in replies:
            eq = parse_equation(r)
            if eq is None:
                raise ValueError(f"line {r!r} is not an equation step")
            out.append(eq[2])
        return out

    def task_menu(self, i: int, replies: tuple[str, ...]) -> tuple[str, ...]:
        task, k = self.tasks[i], len(replies)
        values = self.written_values(replies)
        if k == len(task.program):  # the answer line
            last = values[-1]
            early = values[-2] if len(values) >= 2 else None
            if early is None or early in (last, last + 1) or early == Fraction(task.answer):
                early = last + 2
            return (f"Answer: {_fmt(last)}", f"Answer: {_fmt(last + 1)}", f"Answer: {_fmt(early)}")
        op, left, right = task.program[k]
        a, b = (values[int(x[1:])] if x.startswith("@") else Fraction(int(x)) for x in (left, right))
        r = _OPS[op](a, b)
        grounded = self._grounds[i] | set(values)
        a_mis = a + 1
        while a_mis in grounded:
            a_mis += 1
        return (f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(r)}",  # correct, from the policy's own values
                f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(r + 1)}",  # arithmetic slip
                f"{_fmt(a_mis)} {op} {_fmt(b)} = {_fmt(_OPS[op](a_mis, b))}")  # misread operand

    def state(self, i: int, replies: Sequence[str]) -> str:
        """``format_reasoning(question, replies)``: the ``Reasoning-v0`` observation."""
        return format_reasoning(self.tasks[i].question, list(replies))

    def transcript(self, i: int, replies: Sequence[str]) -> str:
        """The solution so far, one step per line (what the reasoning judges compare)."""
        return "\n".join(replies)

    def reply_prefix(self, state: str) -> str:
        """``" "`` before the first step (``"Assistant: step"``), ``"\\n"`` before a later one.

        :func:`~prefgym.data.reasoning.format_reasoning` writes one step per line, so the
        scored text ``prefix + step`` is the text of the next state.
        """
        return " " if state.endswith(f"{ASSISTANT}:") else "\n"

    def context(self, i: int, h: int) -> str:
        """The question (the judges' context at every step)."""
        return self.tasks[i].question

    def locate(self, state: str) -> tuple[int, list[str]]:
        question, steps = parse_reasoning_prompt(state, self._questions)
        return self._questions[question], steps

    def reply_correct(self, i: int, replies: Sequence[str]) -> bool:
        """Whether the last line is a valid step (``check_step`` with grounding in the question)."""
        return check_step(replies[-1], list(replies[:-1]), self.tasks[i].question)

    def answer_correct(self, i: int, replies: Sequence[str]) -> bool:
        """Whether the solution's final answer matches the task's reference answer."""
        return answers_match(extract_final_answer(self.transcript(i, replies)), self.tasks[i].answer)


def final_answer_accuracy(p: np.ndarray, problem: ReasoningMenuProblem) -> np.ndarray:
    """Exact ``P(final answer correct)`` per task under episode distributions ``p`` ``(tasks, N^H)``."""
    out = []
    for i in range(len(problem)):
        ok = np.array([problem.answer_correct(i, path) for path in problem.trajectories(i)], dtype=float)
        out.append(float(p[i] @ ok))
    return np.asarray(out)
