"""Tabular NLHF solvers over exact payoffs."""

from prefgym.agents.tabular.base import TabularAgent, resolve_game
from prefgym.agents.tabular.magnetic import MMD, MPO
from prefgym.agents.tabular.mirror import MWU, OMWU, ONPO
from prefgym.agents.tabular.regularized import EGPO, NashMD
from prefgym.agents.tabular.spo import SPO
from prefgym.agents.tabular.sppo import SPPO

__all__ = ["EGPO", "MMD", "MPO", "MWU", "NashMD", "OMWU", "ONPO", "SPO", "SPPO", "TabularAgent",
           "resolve_game"]
