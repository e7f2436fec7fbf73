"""AIHF (004): reward and policy learned jointly from demonstrations and preferences."""

from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="aihf", title="AIHF: one reward from demonstrations and preferences, SAC as the inner loop",
    paper="004 Alg. 1, Eq. (19) with Eq. (34)'s weights",
    implementations={"control": "prefgym.agents.aihf:AIHF"}, families=("control",), class_name="AIHF",
)
