"""Pairwise judges for text: ``P(a beats b | context)``.

- :class:`PairwiseJudge`: the interface (batched, output-checked).
- Exact, rule-based judges: :class:`FeatureRaterJudge` (populations of raters
  over reply features, possibly non-transitive), :class:`TableJudge` (any
  preference matrix over a finite reply set).
- :class:`RewardModelJudge`: Bradley-Terry from a reward callable or model.
- :class:`PairwiseModelJudge`: a learned PairRM-style judge, trained by
  :func:`train_pairwise_judge`.
- :class:`LMPairwiseJudge`: LLM-as-judge on any causal LM (label next-token probabilities,
  both orders averaged); :class:`ExactAnswerJudge`: verifiable answers of a prompt dataset;
  :func:`~prefgym.judges.registry.judge_from_spec`: judges by name (``--judge``).
- Task judges with exact preferences for the shipped language games:
  :class:`DialogueTaskJudge`, :class:`ArithmeticStepJudge`, :class:`FinalAnswerJudge`.
- :func:`exact_win_rate` / :func:`sampled_win_rate`: ``P(pi > pi')`` by
  enumeration or by sampling.

The transformers-backed judges import ``transformers`` only when built.
"""

from prefgym.judges.base import JudgeOutputError, PairwiseJudge
from prefgym.judges.exact_answer import ExactAnswerJudge
from prefgym.judges.lm_judge import LMPairwiseJudge
from prefgym.judges.pairwise_model import PairwiseModelJudge, tiny_pairwise_judge, train_pairwise_judge
from prefgym.judges.reward_model import RewardModelJudge, build_word_tokenizer, tiny_sequence_classifier
from prefgym.judges.synthetic import (
    FEATURES,
    FeatureRaterJudge,
    TableJudge,
    WinRateEstimate,
    exact_win_rate,
    sampled_win_rate,
)
from prefgym.judges.tasks import ArithmeticStepJudge, DialogueTaskJudge, FinalAnswerJudge, ScoredJudge

__all__ = [
    "ArithmeticStepJudge",
    "DialogueTaskJudge",
    "ExactAnswerJudge",
    "LMPairwiseJudge",
    "FinalAnswerJudge",
    "ScoredJudge",
    "FEATURES",
    "FeatureRaterJudge",
    "JudgeOutputError",
    "PairwiseJudge",
    "PairwiseModelJudge",
    "RewardModelJudge",
    "TableJudge",
    "WinRateEstimate",
    "build_word_tokenizer",
    "exact_win_rate",
    "sampled_win_rate",
    "tiny_pairwise_judge",
    "tiny_sequence_classifier",
    "train_pairwise_judge",
]
