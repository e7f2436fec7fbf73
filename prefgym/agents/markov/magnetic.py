"""Magnetic mirror descent (000) lifted to the Markov game: per-state MMD on the hard Q, from its spec."""

from __future__ import annotations

from prefgym.agents.markov.spec_agent import markov_class
from prefgym.algorithms import SPECS

__all__ = ["MarkovMMD", "MagneticMPO"]

MarkovMMD = markov_class(
    SPECS["mmd"], name="MarkovMMD", module=__name__,
    doc="""MMD of 000 applied at every ``(k, h, s)`` with ``Q^{pi^t, pi^t}`` as the payoff.

    ``pi_h ~ (pi_h magnet_h^{beta alpha} exp(beta Q_h))^{1 / (1 + beta alpha)}``, with
    ``Q_h`` the hard Q of ``pi^t`` for ``r^t = E_{d^t} r - 1/2`` (exact or sampled),
    the per-state lift of 000 Eq. (4) in the natural actor-critic shape of
    001 App. D. ``magnet_refresh_every=T_k`` resets the magnet to the current
    iterate every ``T_k`` updates (000 Sec. 3.2, MPO); ``None`` keeps it fixed.
    At ``H = 1`` this is the matrix :class:`~prefgym.agents.MMD`.
    Keywords: ``alpha``, ``magnet`` (``(H, S, A)`` / ``(K, H, S, A)``), ``magnet_refresh_every``.
    """)

MagneticMPO = markov_class(
    SPECS["mpo"], name="MagneticMPO", module=__name__,
    doc="""000's Magnetic Preference Optimization on the Markov game: MMD with magnet refresh.

    :class:`MarkovMMD`'s step with ``magnet_refresh_every`` defaulting to 100.
    """)
