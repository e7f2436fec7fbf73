"""Optimistic multiplicative weights (002), last-iterate linear convergence."""

from prefgym.algorithms import rules
from prefgym.algorithms.spec import AlgorithmSpec, HParam
from prefgym.validation import check_choice


def step(x, hp):
    # 002 Eqs. (1)-(2) in single-sequence form: pi' ~ pi exp(eta (2 g_t - g_{t-1}))
    return rules.optimistic_step(x.logits, x.payoff(), x.payoff("previous"), x.lr)


SPEC = AlgorithmSpec(
    name="omwu", title="Optimistic MWU: pi' ~ pi exp(eta (2 g_t - g_{t-1})); last-iterate convergence",
    paper="002 Sec. 3.3, Eqs. (1)-(2); neural form 002 Sec. 5.2",
    hparams=(HParam("previous_at_start", "zero",
                    "g_0 at the first step: 'zero' (002's pi_0 = pihat_1) or 'current' (pi_0 = pi_1)",
                    check=lambda v, n: check_choice(v, n, ("zero", "current")),
                    family_defaults={"llm": "current"}),),
    step=step, learning_rate={"tabular": 2.0, "llm": 1.0},
    uses=frozenset({"previous"}), families=("tabular", "llm"), class_name="OMWU",
)
