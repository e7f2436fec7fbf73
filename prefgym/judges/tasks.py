"""Exact judges for the shipped language tasks: dialogue facts, reasoning steps, final answers.

Each judge gives every response an integer *score* and prefers the higher one
with a fixed, documented probability::

    P(a beats b | context) = 1 - eps   if score(a) > score(b)
                           = 1/2       if score(a) = score(b)
                           = eps       if score(a) < score(b)

``eps`` (default 0.1) is a rater's error rate; ``eps = 0`` gives deterministic
labels. All of them are constant-sum, as :class:`~prefgym.judges.base.PairwiseJudge`
requires.

How the environments call them (see :mod:`prefgym.envs.dialogue` and
:mod:`prefgym.envs.reasoning`): the *context* is what both players share (the
user messages so far, or the question) and the two *responses* are the
players' own transcripts ``[s_h, a_h]`` and ``[s'_h, a'_h]`` (001, Section 2.2).

- :class:`DialogueTaskJudge`: context ``task.context(h)``, responses
  ``format_dialogue`` transcripts of turns ``1..h``; score = whether the reply
  at turn ``h`` is correct (``scope="last"``) or how many of the ``h`` replies
  are (``scope="all"``), by :meth:`~prefgym.data.dialogue.DialogueTask.reply_correct`.
- :class:`ArithmeticStepJudge`: context the question, responses the solution
  lines so far; score = whether the newest line is a valid step
  (:func:`~prefgym.data.reasoning.check_step`).
- :class:`FinalAnswerJudge`: context the question, responses whole
  solutions; score = whether the final answer matches the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from prefgym.data.dialogue import DialogueTask, parse_dialogue_transcript
from prefgym.data.reasoning import (
    ReasoningTask,
    answers_match,
    check_step,
    extract_final_answer,
    is_final_line,
)
from prefgym.judges.base import PairwiseJudge

__all__ = ["ArithmeticStepJudge", "DialogueTaskJudge", "FinalAnswerJudge", "ScoredJudge"]


class ScoredJudge(PairwiseJudge):
    """A judge that scores each response and prefers the higher score with probability ``1 - eps``.

    Subclasses implement :meth:`pair_scores` (or :meth:`score`, for scores
    that do not depend on the other response).

    Parameters
    ----------
    eps
        Probability that the lower-scored response wins, in ``[0, 1/2]``.
    """

    def __init__(self, eps: float = 0.1):
        eps = float(eps)
        if not 0.0 <= eps <= 0.5:
            raise ValueError(f"eps must be in [0, 0.5]; got {eps!r}")
        self.eps = eps

    def score(self, context: str, response: str) -> float:
        """The score of one response (override this or :meth:`pair_scores`)."""
        raise NotImplementedError

    def pair_scores(self, context: str, a: str, b: str) -> tuple[float, float]:
        """The scores of ``a`` and ``b`` in one comparison."""
        return self.score(context, a), self.score(context, b)

    def _prob(self, contexts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        triples = zip(contexts, responses_a, responses_b, strict=True)
        s = np.array([self.pair_scores(c, a, b) for c, a, b in triples], dtype=np.float64).reshape(-1, 2)
        return 0.5 + (0.5 - self.eps) * np.sign(s[:, 0] - s[:, 1])


class DialogueTaskJudge(ScoredJudge):
    """Exact judge of dialogue transcripts against the tasks' hidden reference facts.

    Parameters
    ----------
    tasks
        Tasks with references (e.g. :func:`~prefgym.data.dialogue.make_synthetic_dialogue_tasks`).
    eps
        See :class:`ScoredJudge`.
    scope
        ``"last"``: score 1 if the reply at turn ``h`` is correct, else 0 (the
        step preference; the default for intermediate rewards). ``"all"``: the
        number of correct replies in turns ``1..h`` (for terminal rewards).

    Notes
    -----
    A context must be ``task.context(h)`` of one of the tasks, and each
    response the ``format_dialogue`` transcript of turns ``1..h`` (replies
    recovered by :func:`~prefgym.data.dialogue.parse_dialogue_transcript`).

    Raises
    ------
    ValueError
        At construction, if a task has no references or two tasks share a
        context but differ in what they accept; when judging, on an unknown
        context or a response that is not such a transcript.
    """

    SCOPES = ("last", "all")

    def __init__(self, tasks: Sequence[DialogueTask], eps: float = 0.1, scope: str = "last"):
        super().__init__(eps)
        if scope not in self.SCOPES:
            raise ValueError(f"scope must be one of {self.SCOPES}; got {scope!r}")
        self.scope = scope
        self._index: dict[str, tuple[DialogueTask, int]] = {}
        for task in tasks:
            if not task.has_references:
                raise ValueError(f"task {task.id!r} has no reference facts; DialogueTaskJudge cannot judge "
                                 "it (pass another judge to the environment)")
            for h in range(1, task.horizon + 1):
                key = task.context(h)
                other = self._index.setdefault(key, (task, h))[0]
                if other is not task and _prefix(other, h) != _prefix(task, h):
                    raise ValueError(f"tasks {other.id!r} and {task.id!r} share the user turns 1..{h} but "
                                     "differ in their references; the judge cannot tell them apart")
        if not self._index:
            raise ValueError("DialogueTaskJudge needs at least one task")

    def _locate(self, context: str) -> tuple[DialogueTask, int]:
        try:
            return self._index[context]
        except KeyError:
            raise ValueError(f"context {context[:80]!r} is not task.context(h) of any of this judge's "
                             "tasks") from None

    def score(self, context: str, response: str) -> float:
        task, h = self._locate(context)
        try:
            replies = parse_dialogue_transcript(task.turns[:h], response)
        except ValueError as e:
            raise ValueError(f"response is not a format_dialogue transcript of task {task.id!r}: {e}") \
                from None
        if len(replies) != h or replies[-1] is None:
            raise ValueError(f"response must hold the replies to turns 1..{h} of task {task.id!r}; "
                             f"got {len(replies)} turn(s){' (the last open)' if replies[-1] is None else ''}")
        if self.scope == "last":
            return float(task.reply_correct(h, replies[-1]))
        return float(sum(task.reply_correct(k, r) for k, r in enumerate(replies, start=1)))

    def __repr__(self) -> str:
        return f"DialogueTaskJudge({len({t.id for t, _ in self._index.values()})} tasks, eps={self.eps}, " \
               f"scope={self.scope!r})"


def _prefix(task: DialogueTask, h: int):
    return (task.turns[:h], task.references[:h], None if task.distractors is None else task.distractors[:h])


class ArithmeticStepJudge(ScoredJudge):
    """Step verifier: prefers the solution whose newest line is a valid step.

    The context is the question; each response is a solution so far, one step
    per line. Let ``n`` be the larger line count of the two. A response with
    ``n`` lines scores 1 if its last line passes
    :func:`~prefgym.data.reasoning.check_step` (given its earlier lines and,
    with ``grounded=True``, the question) and 0 otherwise. A response with
    fewer lines has already finished: it scores 1 if its last line is a
    final-answer line (a finished solution makes no new mistake; 001 App. H's
    steps after finishing are empty), else 0.

    So a correct step beats an incorrect one with probability ``1 - eps``, and
    two correct (or two incorrect) steps tie. Works for any question; exact
    for the steps of :func:`~prefgym.data.reasoning.make_arithmetic_tasks`.

    Parameters
    ----------
    eps
        See :class:`ScoredJudge`.
    grounded
        Require every number on an equation's left side to appear in the
        question or on the right side of an earlier line (blocks scoring with
        ``"1 + 1 = 2"``). Turn off for problems that use number words.
    """

    def __init__(self, eps: float = 0.1, grounded: bool = True):
        super().__init__(eps)
        self.grounded = bool(grounded)

    def pair_scores(self, context: str, a: str, b: str) -> tuple[float, float]:
        la, lb = a.split("\n"), b.split("\n")
        n = max(len(la), len(lb))
        question = context if self.grounded else None
        return tuple(  # type: ignore[return-value]
            float(check_step(lines[-1], lines[:-1], question)) if len(lines) == n
            else float(is_final_line(lines[-1]))
            for lines in (la, lb)
        )

    def __repr__(self) -> str:
        return f"ArithmeticStepJudge(eps={self.eps}, grounded={self.grounded})"


class FinalAnswerJudge(ScoredJudge):
    """Prefers the solution whose final answer matches the reference.

    Score 1 iff :func:`~prefgym.data.reasoning.extract_final_answer` of the
    response matches the reference answer of the question (the context) by
    :func:`~prefgym.data.reasoning.answers_match`; a solution without a final
    answer scores 0.

    Parameters
    ----------
    tasks
        Reasoning tasks, or a mapping ``question -> reference answer``.
    eps
        See :class:`ScoredJudge`.

    Raises
    ------
    ValueError
        If one question has two different answers, or (when judging) the
        context is not one of the questions.
    """

    def __init__(self, tasks: Sequence[ReasoningTask] | Mapping[str, str], eps: float = 0.1):
        super().__init__(eps)
        pairs = tasks.items() if isinstance(tasks, Mapping) else ((t.question, t.answer) for t in tasks)
        self._answers: dict[str, str] = {}
        for q, ans in pairs:
            old = self._answers.setdefault(q, ans)
            if not answers_match(ans, old):
                raise ValueError(f"question {q[:60]!r} has two reference answers: {old!r} and {ans!r}")
        if not self._answers:
            raise ValueError("FinalAnswerJudge needs at least one question")

    def reference(self, question: str) -> str:
        """The reference answer of ``question``."""
        try:
            return self._answers[question]
        except KeyError:
            raise ValueError(f"context {question[:80]!r} is not one of this judge's questions") from None

    def score(self, context: str, response: str) -> float:
        return float(answers_match(extract_final_answer(response), self.reference(context)))

    def __repr__(self) -> str:
        return f"FinalAnswerJudge({len(self._answers)} questions, eps={self.eps})"
