"""One spec per algorithm and the one registry built from them (torch-free, NumPy only).

Every module of this package except :mod:`.spec`, :mod:`.rules` and :mod:`.docs` defines one
``SPEC = AlgorithmSpec(...)``; :data:`SPECS` collects them, so a new algorithm is
one new module here. :func:`get_spec` resolves a name, an alias or a CLI spelling
(``omwu-llm``, ``Nash-MD``). Families build their agents from the specs in
:mod:`prefgym.agents.registry` (``make_agent``).
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from prefgym.algorithms.spec import FAMILIES, AlgorithmSpec, HParam, StepInputs
from prefgym.errors import InvalidArgumentError

__all__ = ["FAMILIES", "SPECS", "AlgorithmSpec", "HParam", "StepInputs", "get_spec", "normalize_name"]

_NOT_SPECS = {"spec", "rules", "docs"}
#: suffix of the CLI's language-model agent names (``omwu-llm``)
LLM_SUFFIX = "_llm"


def _discover() -> dict[str, AlgorithmSpec]:
    specs: dict[str, AlgorithmSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_SPECS or info.name.startswith("_"):
            continue
        spec = import_module(f"{__name__}.{info.name}").SPEC
        if not isinstance(spec, AlgorithmSpec) or spec.name != info.name:
            raise RuntimeError(f"prefgym.algorithms.{info.name} must define "
                               f"SPEC = AlgorithmSpec(name={info.name!r})")
        specs[spec.name] = spec
    return specs


#: algorithm name -> spec, one per module of this package
SPECS: dict[str, AlgorithmSpec] = _discover()
_ALIASES = {alias: spec.name for spec in SPECS.values() for alias in spec.aliases}


def normalize_name(name: str) -> str:
    """``"Nash-MD"`` -> ``"nash_md"``: lower case, ``-`` as ``_``."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"an algorithm name must be a string; got {type(name).__name__}")
    return name.strip().lower().replace("-", "_")


def get_spec(name: str) -> AlgorithmSpec:
    """The spec of a name or an alias (case-insensitive, ``-`` or ``_``, an ``-llm`` suffix allowed)."""
    key = normalize_name(name)
    if key.endswith(LLM_SUFFIX):
        key = key[: -len(LLM_SUFFIX)]
    key = _ALIASES.get(key, key)
    if key not in SPECS:
        raise InvalidArgumentError(f"unknown algorithm {name!r}; choose from {sorted(SPECS)}")
    return SPECS[key]
