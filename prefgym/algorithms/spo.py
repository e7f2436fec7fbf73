"""Soft preference optimisation (003): a pairwise loss whose fixed point is Softmax(r / alpha)."""

from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="spo", title="SPO: the pairwise loss L_pref^{alpha, mu}; fixed point Softmax(r / alpha)",
    paper="003 Eqs. (9)-(15)",
    implementations={"tabular": "prefgym.agents.tabular.spo:SPO",
                     "llm": "prefgym.agents.llm.algorithms:SPOAlgorithm"},
    families=("tabular", "llm"), class_name="SPO",
)
