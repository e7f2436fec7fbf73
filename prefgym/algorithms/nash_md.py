"""Nash mirror descent (Munos et al. 2023): 002's "OMD (regularized)" against a geometric mixture."""

from prefgym.algorithms import rules
from prefgym.algorithms.spec import AlgorithmSpec, HParam
from prefgym.errors import InvalidArgumentError
from prefgym.validation import check_nonnegative_float, check_probability


def step(x, hp):
    beta = x.lr * hp.tau if hp.mixture is None else hp.mixture
    mix = rules.geometric_mixture(x.logits, x.reference, beta)  # pi_t^{1-beta} ref^beta (Munos et al. Eq. 8)
    # pi' ~ pi^{1 - eta tau} ref^{eta tau} exp(eta A pi_mix) (002 App. D.2)
    return rules.regularized_step(x.logits, x.payoff(mix), x.lr, hp.tau, x.reference)


def check_regularized(hp, lr) -> None:
    """``eta tau <= 1``: the step's geometric mixture has exponents in [0, 1]."""
    if lr * hp.tau > 1:
        raise InvalidArgumentError(f"learning_rate * tau must be <= 1; got {lr * hp.tau:g}")


TAU = HParam("tau", 0.01, "KL coefficient tau towards the reference (002 Sec. 3.2)",
             check=check_nonnegative_float, family_defaults={"llm": 0.1})

SPEC = AlgorithmSpec(
    name="nash_md", title="Nash-MD: regularised MD against pi^{1-b} ref^b; converges to the regularised NE",
    paper="Munos et al. 2023 Eq. (8); 002 App. D.2 'OMD (regularized)'",
    hparams=(TAU, HParam("mixture", None, "mixture weight b of the opponent; None: eta tau",
                         check=check_probability)),
    step=step, validate=check_regularized, learning_rate={"llm": 1.0}, uses=frozenset({"reference"}),
    aliases=("nashmd",), class_name="NashMD",
)
