"""Mirror descent / multiplicative weights: 002's "OMD" and 000's "MD" baseline."""

from prefgym.algorithms import rules
from prefgym.algorithms.spec import AlgorithmSpec


def step(x, hp):
    return rules.mirror_step(x.logits, x.payoff(), x.lr)  # pi' ~ pi exp(eta A pi) (000 Sec. 2.2)


SPEC = AlgorithmSpec(
    name="md", title="Mirror descent / multiplicative weights (MWU); average iterate converges",
    paper="000 Sec. 2.2; 002 'OMD'; Markov: 001 Eq. (7) without optimism, Thm 10",
    step=step, learning_rate={"markov": 0.5},
    implementations={"markov": "prefgym.agents.markov.ompo:MarkovMD"},
    families=("tabular", "markov"), aliases=("mwu", "omd", "md_markov"),
    class_name="MWU",
)
