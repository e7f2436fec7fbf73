"""Magnetic mirror descent (000): converges to the regularised NE around its magnet."""

from prefgym.algorithms import rules
from prefgym.algorithms.spec import AlgorithmSpec, HParam
from prefgym.validation import check_positive_float, check_positive_int


def step(x, hp):
    # 000 Eq. (4), closed form: pi' ~ (pi magnet^{eta alpha} exp(eta g))^{1 / (1 + eta alpha)}
    return rules.magnetic_step(x.logits, x.payoff(), x.lr, hp.alpha, x.magnet)


ALPHA = HParam("alpha", 0.1, "magnet strength alpha (000 Eq. 4)", check=check_positive_float)
REFRESH = HParam("magnet_refresh_every", None,
                 "T_k: iterations between refreshes of the magnet to the iterate (000 Sec. 3.2); None: fixed",
                 check=check_positive_int)

SPEC = AlgorithmSpec(
    name="mmd", title="Magnetic mirror descent: last iterate converges to the regularised NE",
    paper="000 Eq. (4), Sec. 3.1; Markov: per-state MMD on the hard Q (001 App. D shape)",
    hparams=(ALPHA, REFRESH), step=step, uses=frozenset({"magnet"}), magnet_refresh="magnet_refresh_every",
    families=("tabular", "markov"), aliases=("mmd_markov",), class_name="MMD",
)
