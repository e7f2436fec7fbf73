"""Reproductions of paper figures: each runs, plots, and reports whether the claim held.

>>> from prefgym.reproductions import REPRODUCTIONS
>>> summary = REPRODUCTIONS["mpo-fig3"].run("runs/reproduce/mpo-fig3", quick=True)  # doctest: +SKIP
>>> summary["verdicts"]  # doctest: +SKIP
"""

from __future__ import annotations

from prefgym.reproductions import (
    aihf_mujoco,
    llm_menu,
    llm_multiturn,
    llm_reasoning,
    llm_spo,
    mpo_fig3,
    ompo_gridworld,
    omwu_fig2,
    selfplay_gridworld,
)
from prefgym.reproductions.registry import Reproduction

#: reproduction name -> :class:`Reproduction`
REPRODUCTIONS: dict[str, Reproduction] = {
    r.name: r for r in (omwu_fig2.REPRODUCTION, mpo_fig3.REPRODUCTION, ompo_gridworld.REPRODUCTION)
}
REPRODUCTIONS[aihf_mujoco.REPRODUCTION.name] = aihf_mujoco.REPRODUCTION
REPRODUCTIONS[llm_menu.REPRODUCTION.name] = llm_menu.REPRODUCTION
REPRODUCTIONS[llm_spo.REPRODUCTION.name] = llm_spo.REPRODUCTION
REPRODUCTIONS[llm_multiturn.REPRODUCTION.name] = llm_multiturn.REPRODUCTION
REPRODUCTIONS[llm_reasoning.REPRODUCTION.name] = llm_reasoning.REPRODUCTION
REPRODUCTIONS[selfplay_gridworld.REPRODUCTION.name] = selfplay_gridworld.REPRODUCTION


def get_reproduction(name: str) -> Reproduction:
    """Look a reproduction up by name."""
    if name not in REPRODUCTIONS:
        raise ValueError(f"unknown reproduction {name!r}; choose from {sorted(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


__all__ = ["REPRODUCTIONS", "Reproduction", "get_reproduction"]
