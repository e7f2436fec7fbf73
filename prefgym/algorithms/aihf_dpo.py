"""AIHF's policy-only variants (004 Sec. 3.3): demonstrations plus preferences in one loss."""

from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="aihf_dpo", title="AIHF-DPO / Self-Play AIHF: demonstrations and preferences in one loss",
    paper="004 Eqs. (10)-(11)",
    implementations={"llm": "prefgym.agents.llm.algorithms:AIHFAlgorithm"}, families=("llm",),
    class_name="AIHFDPO",
)
