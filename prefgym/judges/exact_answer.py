"""A verifiable judge for free-text replies: the reply whose answer matches the reference wins.

:class:`ExactAnswerJudge` is the judge of ``--judge exact-answer``: the context is the
prompt's text (:func:`~prefgym.llm.chat.prompt_text`), the reference answer comes from the
prompt dataset, and a reply's answer is its final-answer line (``Answer: x``, ``#### x``,
``\\boxed{x}``) if it has one, else the last number it writes (chat models rarely keep
to a format). ``P(a beats b) = 1 - eps`` when only ``a`` is correct, ``1/2`` when both or
neither are (:class:`~prefgym.judges.tasks.ScoredJudge`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from prefgym.data.reasoning import answers_match, extract_final_answer
from prefgym.errors import InvalidArgumentError
from prefgym.judges.tasks import ScoredJudge

__all__ = ["ExactAnswerJudge", "extract_answer"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def extract_answer(reply: str) -> str | None:
    """The answer a reply gives: its final-answer line, else its last number, else ``None``."""
    final = extract_final_answer(reply)
    if final is not None:
        return final
    numbers = _NUMBER.findall(reply)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


class ExactAnswerJudge(ScoredJudge):
    """Prefers the reply whose answer (:func:`extract_answer`) equals the prompt's reference answer.

    Parameters
    ----------
    answers
        ``prompt text -> reference answer``, or :class:`~prefgym.data.prompts.PromptRecord` s
        (those without an answer are an error).
    eps
        Probability that the wrong reply wins against the right one (default 0: exact labels).
    """

    def __init__(self, answers: Mapping[str, str] | Iterable, eps: float = 0.0):
        super().__init__(eps)
        from prefgym.llm.chat import prompt_text

        if isinstance(answers, Mapping):
            pairs = list(answers.items())
        else:
            pairs = []
            for r in answers:
                if r.answer is None:
                    raise InvalidArgumentError(f"the exact-answer judge needs a reference answer for every "
                                               f"prompt; record {r.id!r} has none (add an 'answer' column)")
                pairs.append((prompt_text(r.prompt), r.answer))
        self.answers: dict[str, str] = {}
        for q, a in pairs:
            old = self.answers.setdefault(q, str(a))
            if not answers_match(str(a), old):
                raise InvalidArgumentError(f"prompt {q[:60]!r} has two reference answers: {old!r} and {a!r}")
        if not self.answers:
            raise InvalidArgumentError("the exact-answer judge needs at least one prompt with an answer")

    def correct(self, context: str, reply: str) -> bool:
        """Whether ``reply`` answers ``context`` correctly."""
        try:
            ref = self.answers[context]
        except KeyError:
            raise InvalidArgumentError(f"context {context[:80]!r} is not one of this judge's "
                                       "prompts") from None
        return answers_match(extract_answer(reply), ref)

    def score(self, context: str, response: str) -> float:
        return float(self.correct(context, response))

    def __repr__(self) -> str:
        return f"ExactAnswerJudge({len(self.answers)} prompts, eps={self.eps})"
