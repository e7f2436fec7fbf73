"""Reproductions of paper figures: each runs, plots, and reports whether the claim held.

>>> from prefgym.reproductions import REPRODUCTIONS
>>> summary = REPRODUCTIONS["mpo-fig3"].run("runs/reproduce/mpo-fig3", quick=True)  # doctest: +SKIP
>>> summary["verdicts"]  # doctest: +SKIP

The registry is lazy: :data:`CATALOG` names each reproduction's module, one-line
description and the optional modules it needs, and a module is imported only when its
reproduction is looked up (``REPRODUCTIONS[name]``), so listing them imports no torch and
a missing extra is reported in one line (:class:`~prefgym.errors.MissingExtraError`).
A new reproduction is a module with a ``REPRODUCTION`` attribute and one :func:`register`
call below.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module

from prefgym.reproductions.registry import Reproduction


@dataclass(frozen=True)
class CatalogEntry:
    """Where a reproduction lives and what it needs, known without importing it."""

    module: str
    description: str
    extra: str | None = None
    requires: tuple[str, ...] = ()


#: reproduction name -> :class:`CatalogEntry` (``prefgym list`` reads only this)
CATALOG: dict[str, CatalogEntry] = {}


def register(name: str, module: str, description: str, extra: str | None = None,
             requires: tuple[str, ...] = ()) -> None:
    """Add a reproduction: ``module`` defines ``REPRODUCTION``; ``requires`` come with ``extra``."""
    CATALOG[name] = CatalogEntry(module, description, extra, tuple(requires))


_LLM = ("torch", "transformers")
register("omwu-fig2", "prefgym.reproductions.omwu_fig2",
         "002 Fig. 2 (tabular): OMWU's last-iterate duality gap converges linearly on planted-NE games; "
         "MD's last iterate does not; regularised methods plateau")
register("mpo-fig3", "prefgym.reproductions.mpo_fig3",
         "000 Fig. 3: MD's last iterate cycles around the NE, MMD converges to the regularised NE (faster "
         "but further for larger alpha), MPO reaches the NE")
register("ompo-gridworld", "prefgym.reproductions.ompo_gridworld",
         "001 Fig. 1a: OMPO vs MPO on 10 random gridworlds, exploitability of the last and average "
         "iterates vs policy updates (exact Q)")
register("aihf-mujoco", "prefgym.reproductions.aihf_mujoco",
         "004 Fig. 5 / Table 1: AIHF vs RLHF vs IRL-only on MuJoCo (Hopper-v5), true return vs SAC steps, "
         "and the data-quality table", "mujoco", ("torch", "stable_baselines3", "mujoco", "minari"))
register("aihf-examples", "prefgym.reproductions.aihf_examples",
         "004 exact results: Example 1 (56/110, RLHF 0.6), Example 2 / Figure 9, tabular Algorithm 1 "
         "(Theorem 4.1 rate), Lemma 4.1 gradient")
register("selfplay-gridworld", "prefgym.reproductions.selfplay_gridworld",
         "SB3 PPO self-play (snapshot pools) on 001's random gridworlds: exact exploitability of "
         "the read-out policy over training, beside OMPO", "sb3", ("torch", "stable_baselines3"))
register("llm-menu", "prefgym.reproductions.llm_menu",
         "Menu game on a tiny GPT-2 (002's neural experiment on an LM): OMWU-neural and MPO drive the "
         "exact last-iterate duality gap down; iterative DPO on best-vs-worst pairs does not", "llm", _LLM)
register("llm-spo", "prefgym.reproductions.llm_spo",
         "SPO Theorem 1 on a tiny GPT-2 menu policy: under a Bradley-Terry judge, self-play SPO drives "
         "the response distribution to Softmax(r / alpha) for alpha in {0.5, 1, 2}", "llm", _LLM)
register("llm-multiturn", "prefgym.reproductions.llm_multiturn",
         "Multi-turn (3-turn) synthetic dialogues on a tiny GPT-2 with per-turn reply menus: OMPO and MPO "
         "(001 Algs. 2 and 4, one-step Q) raise the exact win rate over the base model; per-iteration "
         "win rates for 3 iterations (001 Tables 2-3 shape)", "llm", _LLM)
register("llm-reasoning", "prefgym.reproductions.llm_reasoning",
         "3-step arithmetic word problems on a tiny GPT-2, step menus that follow the policy's own "
         "earlier steps: OMPO and MPO (001 Algs. 2 and 4, one-step Q, and with a terminal preference as "
         "001 G.2) raise the exact final-answer win rate over the base model; per-iteration win rates "
         "for 3 iterations (001 Tables 2-3 shape)", "llm", _LLM)
register("lm-arithmetic", "prefgym.reproductions.lm_arithmetic",
         "SmolLM2-135M-Instruct + LoRA on arithmetic word problems, exact-answer judge: OMPO, MPO, OMWU, SPO "
         "and iterative DPO vs the base model (greedy held-out accuracy, win rate, KL), and one OMPO arm "
         "judged by SmolLM2 itself", "llm", ("torch", "transformers", "gguf", "peft"))


class _Registry(Mapping):
    """name -> :class:`Reproduction`, importing a reproduction's module on first lookup."""

    def __init__(self) -> None:
        self._loaded: dict[str, Reproduction] = {}

    def __getitem__(self, name: str) -> Reproduction:
        if name not in self._loaded:
            entry = CATALOG[name]  # KeyError for an unknown name, as a dict
            from prefgym.optional import require

            for module in entry.requires:
                require(module, extra=entry.extra or "all",
                        purpose=f"reproduction {name!r} needs {module}")
            self._loaded[name] = import_module(entry.module).REPRODUCTION
        return self._loaded[name]

    def __setitem__(self, name: str, reproduction: Reproduction) -> None:
        """Register an already imported reproduction (its module is then ``reproduction.runner``'s)."""
        CATALOG[name] = CatalogEntry(reproduction.runner.__module__, reproduction.description)
        self._loaded[name] = reproduction

    def __iter__(self) -> Iterator[str]:
        return iter(CATALOG)

    def __len__(self) -> int:
        return len(CATALOG)


#: reproduction name -> :class:`Reproduction` (lazy: see the module docstring)
REPRODUCTIONS = _Registry()


def get_reproduction(name: str) -> Reproduction:
    """Look a reproduction up by name."""
    if name not in CATALOG:
        raise ValueError(f"unknown reproduction {name!r}; choose from {sorted(CATALOG)}")
    return REPRODUCTIONS[name]


__all__ = ["CATALOG", "CatalogEntry", "REPRODUCTIONS", "Reproduction", "get_reproduction", "register"]
