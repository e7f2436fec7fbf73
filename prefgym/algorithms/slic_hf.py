"""SLiC-HF (Zhao et al. 2023), the rank-calibration baseline of 003."""

from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="slic_hf", title="SLiC-HF: rank-calibration hinge on the best-vs-worst pairs",
    paper="Zhao et al. 2023; 003 App. E.2",
    implementations={"llm": "prefgym.agents.llm.algorithms:SLiCHFAlgorithm"}, families=("llm",),
    class_name="SLiCHF",
)
