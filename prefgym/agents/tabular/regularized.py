"""KL-regularised self-play: Nash-MD ("OMD (regularized)" of 002) and EGPO, from their specs."""

from __future__ import annotations

from prefgym.agents.tabular.spec_agent import tabular_class
from prefgym.algorithms import SPECS

__all__ = ["NashMD", "EGPO"]

NashMD = tabular_class(
    SPECS["nash_md"], module=__name__,
    doc="""Nash mirror descent (Munos et al. 2023, Eq. 8), 002's "OMD (regularized)".

    ``pi_t^mix ~ pi_t^{1 - beta} ref^beta`` with ``beta = eta tau`` (or
    ``mixture``), then ``pi_{t+1} ~ pi_t^{1 - eta tau} ref^{eta tau} exp(eta A pi_t^mix)``.
    Converges to the regularised NE, so its gap in the original game plateaus.
    Keywords: ``tau``, ``mixture``, ``reference`` (the initial policy by default).
    """)

EGPO = tabular_class(
    SPECS["egpo"], module=__name__,
    doc="""Extragradient preference optimisation (Zhou et al. 2025, Eqs. 2-3).

    ``pi_{t+1/2} ~ pi_t^{1-eta tau} ref^{eta tau} exp(eta A pi_t)``, then the
    same step from ``pi_t`` with the payoff of ``pi_{t+1/2}``. Keywords: ``tau``, ``reference``.
    """)
