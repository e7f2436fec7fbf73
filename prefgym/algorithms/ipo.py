"""Iterative IPO (Azar et al. 2023) on the group's best-vs-worst pairs."""

from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="ipo", title="Iterative IPO on the best-vs-worst pairs of each group",
    paper="Azar et al. 2023 Eq. (17)",
    implementations={"llm": "prefgym.agents.llm.algorithms:IPOAlgorithm"}, families=("llm",),
    class_name="IPO",
)
