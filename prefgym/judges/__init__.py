"""Pairwise judges for text: ``P(a beats b | context)``."""

from prefgym.judges.base import JudgeOutputError, PairwiseJudge

__all__ = ["JudgeOutputError", "PairwiseJudge"]
