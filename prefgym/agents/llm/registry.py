"""The language-model side of the one registry: an algorithm class and a trainer class per spec.

The algorithm is the spec's hand-written :class:`~.algorithms.SelfPlayAlgorithm` (its
``implementations["llm"]``) or the generic adapter of :mod:`.spec_algorithm`; the
trainer is :class:`~.trainer.SelfPlayTrainer` with that algorithm fixed, named
``<ClassName>Trainer`` (``OMWUTrainer``, ``NashMDTrainer``, ...).
"""

from __future__ import annotations

from importlib import import_module

from prefgym.agents.llm.algorithms import SelfPlayAlgorithm
from prefgym.agents.llm.spec_algorithm import llm_algorithm_class
from prefgym.agents.llm.trainer import SelfPlayTrainer
from prefgym.algorithms import SPECS, AlgorithmSpec

__all__ = ["ALGORITHMS", "LLM_AGENTS", "algorithm_class", "trainer_class"]


def algorithm_class(spec: AlgorithmSpec) -> type[SelfPlayAlgorithm]:
    """The :class:`SelfPlayAlgorithm` of ``spec``."""
    path = spec.implementations.get("llm")
    if path is None:
        return llm_algorithm_class(spec)
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)


_TRAINERS: dict[str, type[SelfPlayTrainer]] = {}


def trainer_class(spec: AlgorithmSpec) -> type[SelfPlayTrainer]:
    """The :class:`SelfPlayTrainer` subclass that fixes ``spec``'s algorithm (built once)."""
    if spec.name not in _TRAINERS:
        algo = algorithm_class(spec)
        doc = (f":class:`SelfPlayTrainer` with :class:`{algo.__module__}.{algo.__name__}`: {spec.title} "
               f"({spec.paper}); its hyper-parameters are keyword arguments.")
        _TRAINERS[spec.name] = type(spec.trainer_class_name, (SelfPlayTrainer,), {
            "name": spec.name, "algorithm_class": algo, "__doc__": doc, "__module__": __name__})
    return _TRAINERS[spec.name]


#: algorithm name -> :class:`SelfPlayAlgorithm` class, every spec with a language-model form
ALGORITHMS: dict[str, type[SelfPlayAlgorithm]] = {
    s.name: algorithm_class(s) for s in SPECS.values() if "llm" in s.families}
#: algorithm name -> trainer class
LLM_AGENTS: dict[str, type[SelfPlayTrainer]] = {
    s.name: trainer_class(s) for s in SPECS.values() if "llm" in s.families}


def __getattr__(name: str):
    """The trainers and algorithms by class name (``OMWUTrainer``, ``OMWUAlgorithm``, ...)."""
    for cls in (*LLM_AGENTS.values(), *ALGORITHMS.values()):
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
