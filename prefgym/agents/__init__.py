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
from prefgym.agents.registry import agent_class, make_agent
from prefgym.agents.tabular import EGPO, MMD, MPO, MWU, OMWU, ONPO, SPO, SPPO, NashMD, TabularAgent
from prefgym.algorithms import SPECS, get_spec, normalize_name
from prefgym.errors import InvalidArgumentError

MD = MWU

#: agent name -> class, every tabular and Markov agent of the registry (``prefgym.agents.registry``):
#: an algorithm's tabular class under its name, its Markov class under ``NAME_markov`` when it has both
AGENTS: dict[str, type[BaseAgent]] = {
    cls.name: cls for cls in (agent_class(spec, family) for spec in SPECS.values()
                              for family in ("tabular", "markov") if family in spec.families)
}


#: names of earlier releases (saved run configs use them) -> their AGENTS key
_RENAMED = {"magnetic_mpo": "mpo_markov"}


def get_agent_class(name: str, family: str | None = None) -> type[BaseAgent]:
    """Look an agent class up by its name (case-insensitive, ``-`` or ``_``; aliases such as ``mwu``).

    ``family`` (``"tabular"`` / ``"markov"``) picks the form of an algorithm that has both;
    without it a key of :data:`AGENTS` wins, then the algorithm's first family.
    """
    key = normalize_name(name)
    key = _RENAMED.get(key, key)
    if family is None and key in AGENTS:
        return AGENTS[key]
    try:
        spec = get_spec(key)
    except InvalidArgumentError:
        raise ValueError(f"unknown agent {name!r}; choose from {sorted(AGENTS)}") from None
    if family is None:
        family = next((f for f in ("tabular", "markov") if f in spec.families), None)
        if family is None and "control" in spec.families:
            raise ValueError(f"{spec.name} trains on control envs: use prefgym train --algo {spec.name} "
                             "(or prefgym.agents.make_agent with the env)")
        if family is None:
            raise ValueError(f"{spec.name} trains language models only: use the {spec.name}-llm agent")
    return agent_class(spec, family)


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
           "get_agent_class", "make_agent"]
