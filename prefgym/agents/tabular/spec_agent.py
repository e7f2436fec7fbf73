"""The tabular adapter: any :class:`~prefgym.algorithms.AlgorithmSpec` on the exact payoffs of a matrix game.

The spec's step reads ``payoff(opponent) = A pi_opponent`` (exact), the previous
iterate's payoff kept from the last update, the magnet (refreshed on the spec's
schedule) and the reference policy (the initial policy unless given).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from prefgym.agents.spec_adapter import AgentInputs, SpecAgentMixin
from prefgym.agents.tabular.base import TabularAgent
from prefgym.algorithms.rules import log_normalize, regression_fit
from prefgym.algorithms.spec import AlgorithmSpec, unknown_opponent
from prefgym.validation import check_nonnegative_float, check_positive_float, check_positive_int

__all__ = ["SpecTabularAgent", "TabularInputs", "tabular_class"]


class TabularInputs(AgentInputs):
    """:class:`~prefgym.algorithms.StepInputs` of a :class:`SpecTabularAgent` at its current iterate."""

    def payoff(self, opponent: Any = "current") -> np.ndarray:
        """``A pi_opponent``: exact payoffs of every action against the opponent."""
        a = self._agent
        if isinstance(opponent, str):
            if opponent == "current":
                return a._payoff
            if opponent == "previous":
                return a.prev_payoff
            if opponent == "magnet":
                return a.game._payoff_vector(np.exp(a.magnet_logits))
            raise unknown_opponent(opponent)
        return a.game._payoff_vector(log_normalize(opponent)[1])


class SpecTabularAgent(SpecAgentMixin, TabularAgent):
    """A tabular agent whose update is its spec's step (generic over :data:`~prefgym.algorithms.SPECS`).

    Keyword arguments are the spec's hyper-parameters, plus ``reference`` (a policy;
    the initial policy by default) when the step reads one, ``magnet`` (the initial
    policy by default) when it keeps a magnet, and ``inner_steps`` / ``inner_lr``:
    ``inner_steps=None`` (default) takes the exact step, an integer solves it by at most that
    many gradient steps (rate ``inner_lr``, stopping once successive losses differ by at most
    ``inner_tol``) of the nested regression of 002 App. D.2 (samples from ``pi_t``,
    :func:`~prefgym.algorithms.rules.regression_fit`), as 002's MPO and SPPO baselines do.
    """

    _extra_names: ClassVar[tuple[str, ...]] = ("inner_steps", "inner_lr", "inner_tol")
    #: defaults of the adapter's own options (a subclass may change them, as SPPO does)
    _extra_defaults: ClassVar[dict[str, Any]] = {"inner_steps": None, "inner_lr": 1.0, "inner_tol": 0.0}

    family: ClassVar[str] = "tabular"

    def __init__(self, game, learning_rate: float | None = None, **kwargs):
        spec = self.spec
        base = {k: kwargs.pop(k) for k in ("init_policy", "seed", "verbose") if k in kwargs}
        reference = kwargs.pop("reference", None) if "reference" in spec.uses else None
        magnet = kwargs.pop("magnet", None) if "magnet" in spec.uses else None
        extra = self._pop_extra(kwargs)
        lr = spec.default_learning_rate("tabular") if learning_rate is None else learning_rate
        super().__init__(game, lr, **base)
        self._init_spec_hparams(kwargs)
        self._set_extra(extra)
        if "reference" in spec.uses:
            self.reference = None if reference is None else self.game._strategy(reference, "reference")
            self.ref_logits = self._log_policy(reference, "reference")
        if "magnet" in spec.uses:
            self.magnet = None if magnet is None else self.game._strategy(magnet, "magnet")
            self.magnet_logits = self._log_policy(magnet, "magnet")
        if "previous" in spec.uses:  # g_0: zero (002) or g_1 (pi_0 = pi_1)
            start = getattr(self.hp, "previous_at_start", "current")
            self.prev_payoff = np.zeros_like(self._payoff) if start == "zero" else self._payoff.copy()

    def _pop_extra(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The adapter's own options, taken out of ``kwargs``."""
        return {k: kwargs.pop(k, v) for k, v in self._extra_defaults.items()}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        steps = extra["inner_steps"]
        self.inner_steps = None if steps is None else check_positive_int(steps, "inner_steps")
        self.inner_lr = check_positive_float(extra["inner_lr"], "inner_lr")
        self.inner_tol = check_nonnegative_float(extra["inner_tol"], "inner_tol")

    def _log_policy(self, policy, name: str) -> np.ndarray:
        """Normalised log-probs of ``policy`` (the initial policy when None), broadcast to the logits."""
        if policy is None:
            return self.logits.copy()
        p = self.game.check_policy(policy, name)
        with np.errstate(divide="ignore"):
            return log_normalize(np.log(np.broadcast_to(p, self.logits.shape)))[0]

    def _solve(self, target: np.ndarray) -> np.ndarray:
        """The next logits: the exact step, or its nested-regression fit from ``pi_t``."""
        if self.inner_steps is None:
            return target
        return regression_fit(self.logits, target, self._policy, self.inner_steps, self.inner_lr,
                              self.inner_tol)[0]

    def _update(self) -> np.ndarray:
        new = self._solve(self.spec.step(TabularInputs(self), self.hp))
        if "previous" in self.spec.uses:
            self.prev_payoff = self._payoff
        self._refresh_magnet(new)
        return new

    def regularized_gap(self) -> np.ndarray:
        """Duality gap of the KL-regularised game (002 Sec. 3.2) at the last iterate."""
        if not hasattr(self, "ref_logits") or not hasattr(self, "tau"):
            raise AttributeError(f"{type(self).__name__} has no KL-regularised game (no reference and tau)")
        return self.game.regularized_duality_gap(self._policy, self.tau, np.exp(self.ref_logits))


def _state_names(spec: AlgorithmSpec) -> tuple[str, ...]:
    return (("prev_payoff",) if "previous" in spec.uses else ()) + (
        ("magnet_logits",) if "magnet" in spec.uses else ())


def _hparam_names(spec: AlgorithmSpec) -> tuple[str, ...]:
    return spec.hparam_names + tuple(k for k in ("reference", "magnet") if k in spec.uses)


_CLASSES: dict[str, type[SpecTabularAgent]] = {}


def tabular_class(spec: AlgorithmSpec, base: type[SpecTabularAgent] = SpecTabularAgent,
                  name: str | None = None, module: str | None = None,
                  doc: str | None = None) -> type[SpecTabularAgent]:
    """The tabular agent class of ``spec`` (built once, then the same class): ``base`` with the spec,
    its name, its saved fields and a docstring."""
    if spec.name in _CLASSES:
        return _CLASSES[spec.name]
    attrs = {"spec": spec, "name": spec.name, "family": "tabular",
             "_hparam_names": _hparam_names(spec) + getattr(base, "_extra_names", ()),
             "_state_names": _state_names(spec),
             "__doc__": doc or f"{spec.title} ({spec.paper}); tabular, exact payoffs.",
             "__module__": module or __name__}
    cls = _CLASSES[spec.name] = type(name or spec.generated_class_name("tabular"), (base,), attrs)
    return cls
