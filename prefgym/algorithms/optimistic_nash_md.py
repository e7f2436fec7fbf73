"""Optimistic Nash-MD: Nash-MD's regularised step with OMWU's optimistic correction."""

from prefgym.algorithms import nash_md, rules
from prefgym.algorithms.spec import AlgorithmSpec


def step(x, hp):
    beta = x.lr * hp.tau if hp.mixture is None else hp.mixture
    mix = rules.geometric_mixture(x.logits, x.reference, beta)  # pi_t^{1-beta} ref^beta (Munos et al. Eq. 8)
    # Nash-MD's payoff plus OMWU's correction g_t - g_{t-1} (002 Eqs. 1-2); tau = 0 is OMWU
    payoff = x.payoff(mix) + (x.payoff() - x.payoff("previous"))
    return rules.regularized_step(x.logits, payoff, x.lr, hp.tau, x.reference)  # 002 App. D.2


SPEC = AlgorithmSpec(
    name="optimistic_nash_md",
    title="Optimistic Nash-MD: Nash-MD's step with OMWU's correction g_t - g_{t-1}; tau = 0 is OMWU",
    paper="Munos et al. 2023 Eq. (8) with 002 Eqs. (1)-(2)",
    hparams=nash_md.SPEC.hparams, step=step, validate=nash_md.check_regularized, learning_rate={"llm": 1.0},
    uses=frozenset({"reference", "previous"}), class_name="OptimisticNashMD",
)
