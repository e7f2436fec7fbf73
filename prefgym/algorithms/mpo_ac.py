"""001's non-optimistic MPO (App. D): natural actor-critic, per-state MWU on the hard Q."""

from prefgym.algorithms import md
from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="mpo_ac", title="001's MPO (natural actor-critic): pi_h ~ pi_h exp(beta Q_h) with the hard Q",
    paper="001 App. D, Alg. 3 (Thm 8); one-step Q for LLMs: Alg. 4",
    step=md.step,  # per state, with the hard Q of pi_t as the payoff
    learning_rate={"llm": 1.0},
    implementations={"llm": "prefgym.agents.llm.multiturn.training:OneStepMPOAlgorithm"},
    families=("markov", "llm"), aliases=("mpo_001",), class_name="OneStepMPO",
    class_names={"markov": "NaturalActorCriticMPO"},
)
