"""Agents for tabular Markov preference games (001): OMPO, MPO-AC, Markov MD, MMD/MPO lifted."""

from prefgym.agents.markov.base import (
    MarkovAgent,
    exploitability_from_payoff,
    resolve_markov_game,
    stage_learning_rates,
)
from prefgym.agents.markov.estimators import ESTIMATORS, exact_q, sampled_q
from prefgym.agents.markov.magnetic import MagneticMPO, MarkovMMD
from prefgym.agents.markov.natural_ac import NaturalActorCriticMPO
from prefgym.agents.markov.ompo import OMPO, MarkovMD

__all__ = ["ESTIMATORS", "MagneticMPO", "MarkovAgent", "MarkovMD", "MarkovMMD", "NaturalActorCriticMPO",
           "OMPO", "exact_q", "exploitability_from_payoff", "resolve_markov_game", "sampled_q",
           "stage_learning_rates"]
