"""Self-play preference optimisation (Wu et al. 2024): the MD step solved by regression."""

from prefgym.algorithms import md
from prefgym.algorithms.spec import AlgorithmSpec

SPEC = AlgorithmSpec(
    name="sppo", title="SPPO: regress log pi/pi_t on eta (P(y > pi_t) - 1/2), the MD step's prox",
    paper="Wu et al. 2024 Eq. (4.6); 002 App. D.2",
    step=md.step,  # the exact prox its regression solves
    learning_rate={"llm": 1.0},
    implementations={"tabular": "prefgym.agents.tabular.sppo:SPPO",
                     "llm": "prefgym.agents.llm.algorithms:SPPOAlgorithm"},
    families=("tabular", "llm"), class_name="SPPO",
)
