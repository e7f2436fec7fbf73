"""What an algorithm is, once for every family: :class:`AlgorithmSpec`.

A spec names an update rule, cites its paper and equation, declares its
hyper-parameters (defaults and checks) and writes its step once, as array code on
log-policies that runs on NumPy arrays and on torch tensors alike. The step reads
everything it needs through :class:`StepInputs`, which each family provides:

* tabular (a matrix game): ``payoff(opponent)`` is the exact ``A pi_opponent``;
* Markov (a tabular Markov game): the exact (or sampled) Q of ``pi_t`` for the stage
  reward of the opponent, at every ``(k, h, s)`` at once;
* LLM (a self-play trainer): ``logits`` are the group's sequence log-probs
  ``log pi_t(y)``, ``payoff(opponent)`` the judge's win rates of the group against
  the opponent minus 1/2, and the step's output becomes the regression target of the
  loss (see :mod:`prefgym.agents.llm.spec_algorithm`).

Opponents are ``"current"`` (``pi_t``), ``"previous"`` (``pi_{t-1}``), ``"magnet"`` or a
log-policy array over the same support (e.g. a geometric mixture).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass
from types import SimpleNamespace
from typing import Any, Literal, Protocol

from prefgym.errors import InvalidArgumentError

__all__ = ["FAMILIES", "HParam", "AlgorithmSpec", "StepInputs", "FixedInputs", "Opponent",
           "magnet_refresh_due", "unknown_opponent"]

#: the families of agents a spec can run in: matrix games, tabular Markov games, language models,
#: and continuous control (SB3 learners on Box envs; hand-written classes only)
FAMILIES = ("tabular", "markov", "llm", "control")
#: the families with a generic adapter (a spec's default)
ADAPTED_FAMILIES = ("tabular", "markov", "llm")
_CONFIG_CLASSES: dict[tuple[str, str], type] = {}
_FAMILY_TAGS = {"tabular": "", "markov": "Markov", "llm": "LLM", "control": "Control"}

Opponent = Any  # "current" | "previous" | "magnet" | an array of log-probabilities


class StepInputs(Protocol):
    """What a step reads; each family implements it (arrays are NumPy or torch)."""

    #: ``log pi_t`` over the actions (responses) of each state, last axis the actions
    logits: Any
    #: the step size ``eta`` (an array broadcasting against ``logits`` for per-stage steps)
    lr: Any
    #: ``log pi_ref`` (None without a reference)
    reference: Any
    #: the magnet's log-policy (None without a magnet)
    magnet: Any

    def payoff(self, opponent: Opponent = "current") -> Any:
        """``P(a > opponent) - 1/2`` of every action (response) of every state."""


@dataclass(frozen=True)
class HParam:
    """One hyper-parameter of a spec's step.

    Parameters
    ----------
    name
        Keyword of the agents' constructors and ``--param NAME=VALUE``.
    default
        Default value; ``family_defaults`` overrides it per family.
    doc
        One line: what it is, with the paper's symbol.
    check
        ``check(value, name) -> value`` (a :mod:`prefgym.validation` checker); None: no check.
    family_defaults
        Per-family defaults, e.g. ``{"llm": "current"}``.
    """

    name: str
    default: Any
    doc: str
    check: Callable[[Any, str], Any] | None = None
    family_defaults: Mapping[str, Any] = field(default_factory=dict)

    def default_for(self, family: str) -> Any:
        return self.family_defaults.get(family, self.default)


@dataclass(frozen=True)
class AlgorithmSpec:
    """One update rule, for every family that can run it.

    Parameters
    ----------
    name
        The one registry name (CLI ``--agent``, ``make_agent``).
    title
        One line for ``prefgym list`` and the docs.
    paper
        The paper and equation(s) of the rule, e.g. ``"002 Sec. 3.3, Eqs. (1)-(2)"``.
    hparams
        The step's hyper-parameters beyond the step size.
    step
        ``step(x: StepInputs, hp) -> logits`` (unnormalised log-policy of ``pi_{t+1}``),
        or None for rules with no closed-form step (e.g. DPO's loss).
    learning_rate
        Default step size ``eta`` per family (``{"tabular": 0.1}``); a family without an
        entry uses ``0.1``.
    uses
        What the step reads besides ``pi_t``: ``"previous"`` (``pi_{t-1}``), ``"magnet"``,
        ``"reference"``.
    magnet_refresh
        Name of the hyper-parameter holding the magnet's refresh period (000 Sec. 3.2),
        or None for a magnet that never moves.
    validate
        ``validate(hp, lr) -> None``: checks between hyper-parameters (raise on error).
    implementations
        Family -> ``"module:Class"`` of a hand-written implementation; a family that
        is listed in ``families`` but not here gets the generic adapter built from ``step``.
    families
        Families the rule runs in (default: the three with a generic adapter).
    aliases
        Older names that resolve to this spec.
    class_name
        Stem of the generated classes' names: ``X`` (tabular), ``MarkovX``, ``XAlgorithm``
        and ``XTrainer`` (LLM); ``class_names`` overrides it per family.
    """

    name: str
    title: str
    paper: str
    hparams: tuple[HParam, ...] = ()
    step: Callable[[StepInputs, SimpleNamespace], Any] | None = None
    learning_rate: Mapping[str, float] = field(default_factory=dict)
    uses: frozenset[Literal["previous", "magnet", "reference"]] = frozenset()
    magnet_refresh: str | None = None
    validate: Callable[[SimpleNamespace, float], None] | None = None
    implementations: Mapping[str, str] = field(default_factory=dict)
    families: tuple[str, ...] = ADAPTED_FAMILIES
    aliases: tuple[str, ...] = ()
    class_name: str = ""
    class_names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"spec {self.name!r}: unknown families {sorted(unknown)}; "
                             f"choose from {FAMILIES}")
        generic = [f for f in self.families if f not in self.implementations]
        if "control" in generic:
            raise ValueError(f"spec {self.name!r}: the control family has no generic adapter; name its class "
                             "in implementations")
        if generic and self.step is None:
            raise ValueError(f"spec {self.name!r} has no step, so each family of {generic} "
                             "needs an implementation")
        if self.magnet_refresh is not None and self.magnet_refresh not in self.hparam_names:
            raise ValueError(f"spec {self.name!r}: magnet_refresh names no hyper-parameter")

    @property
    def hparam_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hparams)

    def default_learning_rate(self, family: str) -> float:
        return float(self.learning_rate.get(family, 0.1))

    def defaults(self, family: str) -> dict[str, Any]:
        """The hyper-parameters' defaults in ``family``."""
        return {h.name: h.default_for(family) for h in self.hparams}

    def check_hparams(self, values: Mapping[str, Any], lr: float, family: str) -> SimpleNamespace:
        """Fill in defaults, check every value and the spec's cross-checks; the result feeds :attr:`step`."""
        unknown = set(values) - set(self.hparam_names)
        if unknown:
            raise InvalidArgumentError(f"{self.name}: unknown hyper-parameters {sorted(unknown)}; "
                                       f"choose from {list(self.hparam_names)}")
        out = {}
        for h in self.hparams:
            v = values.get(h.name, h.default_for(family))
            out[h.name] = h.check(v, h.name) if (h.check is not None and v is not None) else v
        hp = SimpleNamespace(**out)
        if self.validate is not None:
            self.validate(hp, lr)
        return hp

    def refresh_period(self, hp: SimpleNamespace) -> int | None:
        """Iterations between magnet refreshes (None: never)."""
        return None if self.magnet_refresh is None else getattr(hp, self.magnet_refresh)

    @property
    def class_stem(self) -> str:
        """``class_name``, else the name in CamelCase (``nash_md`` -> ``NashMd``)."""
        return self.class_name or "".join(w.capitalize() for w in self.name.split("_"))

    @property
    def trainer_class_name(self) -> str:
        """Name of the LLM trainer class of this spec (``XTrainer``)."""
        return f"{self.class_stem}Trainer"

    def generated_class_name(self, family: str) -> str:
        """Name of the class the generic adapter of ``family`` builds for this spec."""
        if family in self.class_names:
            return self.class_names[family]
        stem = self.class_stem
        names = {"tabular": stem, "markov": f"Markov{stem}", "llm": f"{stem}Algorithm", "control": stem}
        return names[family]

    def config_class(self, family: str) -> type:
        """The frozen dataclass of this spec's settings in ``family`` (TRL's ``*Config``: data only).

        Fields: the step size (``eta`` for the LLM family, ``learning_rate`` otherwise) and the
        hyper-parameters, with the family's defaults; ``make_agent(name, game, config=...)``
        takes an instance. Built once per (spec, family).
        """
        key = (self.name, family)
        if key not in _CONFIG_CLASSES:
            lr = "eta" if family == "llm" else "learning_rate"
            fields = [(lr, float, field(default=self.default_learning_rate(family)))]
            fields += [(h.name, Any, field(default=h.default_for(family))) for h in self.hparams]
            _CONFIG_CLASSES[key] = make_dataclass(
                f"{self.class_stem}{_FAMILY_TAGS[family]}Config", fields, frozen=True,
                namespace={"__doc__": f"Settings of {self.name} ({family}): {lr} and "
                                      f"{', '.join(self.hparam_names) or 'no other hyper-parameter'}."})
        return _CONFIG_CLASSES[key]

    def is_generic(self, family: str) -> bool:
        """Whether ``family`` runs this spec through the generic adapter (no hand-written class)."""
        return family in self.families and family not in self.implementations


def magnet_refresh_due(iteration: int, period: int | None) -> bool:
    """Whether the magnet becomes ``pi_{t+1}`` after 0-based ``iteration`` (000 Sec. 3.2, Alg. 1 line 16)."""
    return period is not None and (iteration + 1) % int(period) == 0


def unknown_opponent(opponent: Any) -> ValueError:
    """The error for an opponent a family does not know."""
    return ValueError(f"unknown opponent {opponent!r}; use 'current', 'previous', 'magnet' "
                      "or a log-policy array")


class FixedInputs:
    """:class:`StepInputs` from payoffs computed beforehand (``payoffs[opponent]``).

    For a family that evaluates the opponents itself, e.g. an LLM loss that reads the
    exact step of its rule: ``SPECS["omwu"].step(FixedInputs(logp, eta, {"current": g,
    "previous": g_prev}), hp)``.
    """

    def __init__(self, logits: Any, lr: Any, payoffs: Mapping[str, Any], reference: Any = None,
                 magnet: Any = None):
        self.logits, self.lr, self.reference, self.magnet = logits, lr, reference, magnet
        self._payoffs = payoffs

    def payoff(self, opponent: Opponent = "current") -> Any:
        if not isinstance(opponent, str) or opponent not in self._payoffs:
            raise ValueError(f"no payoff against {opponent if isinstance(opponent, str) else 'an array'!r} "
                             f"was given; have {sorted(self._payoffs)}")
        return self._payoffs[opponent]
