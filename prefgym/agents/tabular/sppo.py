"""Self-play preference optimisation (SPPO, Wu et al. 2024): MD's step solved by nested regression."""

from __future__ import annotations

from typing import Any, ClassVar

from prefgym.agents.tabular.spec_agent import SpecTabularAgent, tabular_class
from prefgym.algorithms import SPECS

__all__ = ["SPPO"]


class _NestedByDefault(SpecTabularAgent):
    """The spec adapter with 002 App. D.2's nested solver on by default (10 steps)."""

    _extra_defaults: ClassVar[dict[str, Any]] = {"inner_steps": 10, "inner_lr": 1.0, "inner_tol": 1e-10}


SPPO = tabular_class(
    SPECS["sppo"], base=_NestedByDefault, module=__name__,
    doc="""SPPO: ``pi_{t+1}(y) ~ pi_t(y) exp(eta P(y > pi_t))`` (Wu et al. Eq. 4.6).

    Realised, as in 002 App. D.2, by nested optimisation: at most
    ``inner_steps`` gradient steps (rate ``inner_lr``, independent of ``eta``)
    on ``E_{y ~ pi_t} (log pi(y)/pi_t(y) - eta (P(y > pi_t) - 1/2))^2``, stopping
    once successive losses differ by at most ``inner_tol``. ``inner_steps=None``
    takes the exact step, which makes SPPO identical to MD.
    """)
