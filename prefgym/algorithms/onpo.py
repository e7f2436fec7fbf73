"""Optimistic online mirror descent with nested optimisation (ONPO), a baseline of 002."""

from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="onpo", title="ONPO: two regression-solved prox steps per iteration (optimistic OMD)",
    paper="Zhang et al. 2025 Sec. 4.2; 002 App. D.2",
    implementations={"tabular": "prefgym.agents.tabular.mirror:ONPO"}, families=("tabular",),
    class_name="ONPO",
)
