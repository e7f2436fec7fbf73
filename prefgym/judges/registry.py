"""Judges by name, for the command line's ``--judge``.

- ``exact-answer``: :class:`~prefgym.judges.exact_answer.ExactAnswerJudge` on the prompt
  dataset's reference answers;
- ``lm:NAME``: :class:`~prefgym.judges.lm_judge.LMPairwiseJudge` on a causal LM (a shipped
  name such as ``smollm2-135m-instruct``, a ``.gguf`` file or a ``save_pretrained`` folder);
- ``rm:PATH``: :class:`~prefgym.judges.reward_model.RewardModelJudge` on a
  sequence-classification reward-model folder (Bradley-Terry on its scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefgym.errors import InvalidArgumentError

__all__ = ["JUDGE_SPECS", "judge_from_spec"]

#: the accepted forms of a judge spec, for messages and ``--help``
JUDGE_SPECS = ("exact-answer", "lm:NAME_OR_PATH", "rm:PATH")


def judge_from_spec(spec: str, records: Sequence | None = None, cache: str | None = None):
    """Build the judge a spec names (see the module docs).

    Parameters
    ----------
    spec
        ``exact-answer``, ``lm:NAME_OR_PATH`` or ``rm:PATH``.
    records
        :class:`~prefgym.data.prompts.PromptRecord` s with reference answers (``exact-answer``).
    cache
        Model cache folder for ``lm:`` (see :func:`prefgym.llm.pretrained.cache_dir`).

    Raises
    ------
    InvalidArgumentError
        An unknown spec, ``exact-answer`` without answers, a missing reward-model folder.
    """
    s = str(spec).strip()
    kind, _, arg = s.partition(":")
    kind = kind.lower().replace("_", "-")
    if kind == "exact-answer" and not arg:
        if records is None:
            raise InvalidArgumentError("--judge exact-answer needs a prompt dataset with reference answers")
        from prefgym.judges.exact_answer import ExactAnswerJudge

        return ExactAnswerJudge(records)
    if kind == "lm" and arg:
        from prefgym.judges.lm_judge import LMPairwiseJudge

        return LMPairwiseJudge.from_pretrained(arg, cache)
    if kind == "rm" and arg:
        path = Path(arg).expanduser()
        if not path.is_dir():
            raise InvalidArgumentError(f"--judge rm:{arg}: no such reward-model folder (a save_pretrained "
                                       "folder of a sequence-classification model)")
        from prefgym.judges.reward_model import RewardModelJudge

        return RewardModelJudge.from_pretrained(path)
    raise InvalidArgumentError(f"unknown judge {spec!r}; use one of {list(JUDGE_SPECS)}")
