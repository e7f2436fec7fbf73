"""Optimistic Multi-step Preference Optimization (001): optimistic MD over occupancy measures."""

from prefgym.algorithms import omwu
from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="ompo", title="OMPO: optimistic OMD over occupancy measures (soft-Bellman Q, beta_h)",
    paper="001 Alg. 1, Eq. (7), Thm 10; practical form Alg. 2, Eq. (2)",
    step=omwu.step,  # at H = 1 (the LLM's single turn) both forms are OMWU's step
    learning_rate={"markov": 0.5, "llm": 1.0},
    implementations={"markov": "prefgym.agents.markov.ompo:OMPO",
                     "llm": "prefgym.agents.llm.algorithms:OMPOAlgorithm"},
    uses=frozenset({"previous"}), families=("markov", "llm"), class_name="OMPO",
)
