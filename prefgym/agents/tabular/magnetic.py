"""Magnetic mirror descent (MMD) and its magnet-refreshing form, tabular MPO (000), from their specs."""

from __future__ import annotations

from prefgym.agents.tabular.spec_agent import tabular_class
from prefgym.algorithms import SPECS

__all__ = ["MMD", "MPO"]


MMD = tabular_class(
    SPECS["mmd"], module=__name__,
    doc="""Magnetic mirror descent (000 Eq. 4, closed form in 000 Sec. 3.1).

    ``pi_{t+1} ~ (pi_t magnet^{eta alpha} exp(eta A pi_t))^{1/(1 + eta alpha)}``.
    With a fixed magnet the last iterate converges linearly to the regularised
    NE ``pi ~ magnet exp(A pi / alpha)`` (000 Thm 3.2), not to the NE of the game.
    ``magnet_refresh_every=K`` sets the magnet to the current iterate every
    ``K`` updates (000 Sec. 3.2): that is MPO, whose last iterate reaches the
    NE of the original game (000 Thm 3.7).

    Parameters
    ----------
    alpha
        Magnet (regularisation) strength.
    magnet
        Initial magnet; the initial policy by default.
    magnet_refresh_every
        Refresh period ``T_k``; ``None`` keeps the magnet fixed.
    inner_steps
        ``None`` takes the exact closed-form step; an integer solves it by that
        many steps of the nested regression of 002's MPO baseline.
    """)

MPO = tabular_class(
    SPECS["mpo"], base=MMD, module=__name__,
    doc="""Tabular Magnetic Preference Optimization: MMD with magnet refresh (000 Sec. 3.2).

    Defaults from our calibration on random n = 10 games (see BENCHMARKS.md):
    ``eta = 1``, ``alpha = 0.05``, refresh every 100 updates.
    """)
