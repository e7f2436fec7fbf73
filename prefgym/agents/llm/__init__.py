"""Neural (``transformers``) counterparts of the tabular agents.

The update rules of :mod:`prefgym.algorithms.rules` become losses on sequence (or
token) log-probabilities of a causal LM policy (:mod:`prefgym.agents.llm.losses`).
:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` is the shared iterative
self-play loop that samples responses, queries a judge and calls them; the
algorithms (:mod:`prefgym.agents.llm.algorithms`) say how each builds its
iteration's data. :class:`~prefgym.agents.llm.menu.MenuPolicy` restricts an LM to a
finite menu of responses, where win rates and duality gaps are exact.

``LLM_AGENTS`` (name -> trainer class) is kept apart from
:data:`prefgym.agents.AGENTS`, whose agents all play matrix games.

Everything here needs torch and transformers (``pip install 'prefgym[llm]'``). The names
are loaded on first access, so importing this package (or the torch-free
:mod:`prefgym.llm_tasks`) imports no torch; without the ``llm`` extra, accessing a
name raises :class:`~prefgym.errors.MissingExtraError` in one line.
:data:`LLM_AGENT_SUMMARIES` describes the trainers without importing them (``prefgym list``).
"""

from __future__ import annotations

from importlib import import_module

from prefgym.algorithms import SPECS

#: ``LLM_AGENTS`` key -> (trainer class name, one line on its algorithm), from the specs; torch-free, for
#: ``prefgym list`` (a test checks it against ``LLM_AGENTS``)
LLM_AGENT_SUMMARIES: dict[str, tuple[str, str]] = {
    spec.name: (spec.trainer_class_name, spec.title) for spec in SPECS.values() if "llm" in spec.families}

_ALGORITHMS = ("AIHFAlgorithm", "DPOAlgorithm", "IPOAlgorithm", "MPOAlgorithm", "OMPOAlgorithm",
               "SelfPlayAlgorithm", "SelfPlayBatch", "SLiCHFAlgorithm", "SPOAlgorithm", "SPPOAlgorithm")
_TRAINER = ("MenuResponses", "ResponseSource", "SampledResponses", "SelfPlayTrainer", "apply_lora")
#: built from the specs (prefgym.agents.llm.registry): the registries, the generated algorithms and
#: one trainer per algorithm
_REGISTRY = ("ALGORITHMS", "LLM_AGENTS", "NashMDAlgorithm", "OMWUAlgorithm",
             *(cls for cls, _ in LLM_AGENT_SUMMARIES.values()))
#: public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(_ALGORITHMS, "prefgym.agents.llm.algorithms"),
    **dict.fromkeys(_TRAINER, "prefgym.agents.llm.trainer"),
    **dict.fromkeys(_REGISTRY, "prefgym.agents.llm.registry"),
    "MenuPolicy": "prefgym.agents.llm.menu",
    "SelfPlayConfig": "prefgym.agents.llm.config",
    "losses": "prefgym.agents.llm.losses",
}


def __getattr__(name: str):
    if name in _LAZY:
        from prefgym.optional import require

        require("torch", extra="llm", purpose=f"prefgym.agents.llm.{name} needs torch")
        module = import_module(_LAZY[name])
        value = module if name == "losses" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["LLM_AGENT_SUMMARIES", *sorted(_LAZY)]
