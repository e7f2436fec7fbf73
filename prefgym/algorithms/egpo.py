"""Extragradient preference optimisation (Zhou et al. 2025), a baseline of 002."""

from prefgym.algorithms import nash_md, rules
from prefgym.algorithms.spec import AlgorithmSpec


def step(x, hp):
    lr, tau, ref = x.lr, hp.tau, x.reference
    half = rules.regularized_step(x.logits, x.payoff(), lr, tau, ref)  # pi_{t+1/2} (Zhou et al. Eq. 2)
    return rules.regularized_step(x.logits, x.payoff(half), lr, tau, ref)  # Eq. (3)


SPEC = AlgorithmSpec(
    name="egpo", title="Extragradient: a regularised half-step, then the step with the half-step's payoff",
    paper="Zhou et al. 2025 Eqs. (2)-(3); 002 App. D.2", hparams=(nash_md.TAU,), step=step,
    validate=nash_md.check_regularized, learning_rate={"llm": 1.0}, uses=frozenset({"reference"}),
    class_name="EGPO",
)
