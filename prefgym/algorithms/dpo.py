"""Iterative DPO on the group's best-vs-worst pairs, the baseline of 001 and 002."""

from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="dpo", title="Iterative DPO on the best-vs-worst pairs of each group",
    paper="001 App. B.3; Rafailov et al. 2023",
    implementations={"llm": "prefgym.agents.llm.algorithms:DPOAlgorithm"}, families=("llm",),
    class_name="DPO",
)
