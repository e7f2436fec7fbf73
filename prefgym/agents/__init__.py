"""Agents: update rules plus estimators plus schedules (see docs/architecture.md)."""

from prefgym.agents.base import BaseAgent
from prefgym.agents.callbacks import BaseCallback, CallbackList, StopTrainingOnGap
from prefgym.agents.markov import (
    OMPO,
    MagneticMPO,
    MarkovAgent,
    MarkovMD,
    MarkovMMD,
    NaturalActorCriticMPO,
)
from prefgym.agents.tabular import EGPO, MMD, MPO, MWU, OMWU, ONPO, SPO, SPPO, NashMD, TabularAgent

MD = MWU

#: agent name (CLI) -> class
AGENTS: dict[str, type[BaseAgent]] = {
    cls.name: cls for cls in (MWU, OMWU, ONPO, MMD, MPO, NashMD, EGPO, SPPO, SPO,
                              OMPO, NaturalActorCriticMPO, MarkovMD, MarkovMMD, MagneticMPO)
}


def get_agent_class(name: str) -> type[BaseAgent]:
    """Look an agent class up by its CLI name (case-insensitive, ``-`` or ``_``)."""
    key = name.lower().replace("-", "_")
    aliases = {"mwu": "md", "omd": "md", "nashmd": "nash_md"}
    key = aliases.get(key, key)
    if key not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose from {sorted(AGENTS)}")
    return AGENTS[key]


def __getattr__(name: str):
    # AIHF needs stable-baselines3 and torch (the `sb3` extra): import it on first use only
    if name == "AIHF":
        from prefgym.optional import require

        for module in ("torch", "stable_baselines3"):
            require(module, extra="sb3", purpose=f"prefgym.agents.AIHF needs {module}")
        from prefgym.agents.aihf import AIHF

        return AIHF
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AGENTS", "AIHF", "BaseAgent", "BaseCallback", "CallbackList", "EGPO", "MD", "MMD", "MPO", "MWU",
           "MagneticMPO", "MarkovAgent", "MarkovMD", "MarkovMMD", "NashMD", "NaturalActorCriticMPO",
           "OMPO", "OMWU", "ONPO", "SPO", "SPPO", "StopTrainingOnGap", "TabularAgent",
           "get_agent_class"]
