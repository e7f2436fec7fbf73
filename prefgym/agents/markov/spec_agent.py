"""The Markov adapter: any :class:`~prefgym.algorithms.AlgorithmSpec` per state, on the hard Q.

The payoff of every ``(k, h, s, a)`` is ``Q^{pi_t, opponent}_h(s, a)``: the standard Q of
``pi_t`` for the stage reward ``E_{d^opponent} r - 1/2`` (001 Lemma 2), so the spec's step
runs at every state at once (000's MMD lifted as in 001 App. D). With ``estimator="sampled"``
only the current iterate's Q has a Monte Carlo estimate (001 Eq. 2).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from prefgym.agents.markov.base import MarkovAgent
from prefgym.agents.markov.estimators import exact_q
from prefgym.agents.spec_adapter import AgentInputs, SpecAgentMixin
from prefgym.algorithms.rules import log_normalize
from prefgym.algorithms.spec import AlgorithmSpec, unknown_opponent
from prefgym.errors import InvalidArgumentError, InvalidPolicyError

__all__ = ["SpecMarkovAgent", "MarkovInputs", "markov_class"]


class MarkovInputs(AgentInputs):
    """:class:`~prefgym.algorithms.StepInputs` of a :class:`SpecMarkovAgent` at its current iterate."""

    def payoff(self, opponent: Any = "current") -> np.ndarray:
        """Hard Q of ``pi_t`` against ``opponent``'s stage reward, ``(K, H, S, A)``."""
        a = self._agent
        if isinstance(opponent, str) and opponent == "current":
            return a._hard_q()
        if a.estimator != "exact":
            what = opponent if isinstance(opponent, str) else "a mixture"
            raise InvalidArgumentError(f"{a.name}: the payoff against {what!r} needs estimator='exact' "
                                       "(001 Eq. 2 estimates the current iterate's Q only)")
        if isinstance(opponent, str):
            if opponent == "previous":
                return exact_q(a.game, a._policy, a.prev_payoff)
            if opponent == "magnet":
                opponent = a.magnet_logits
            else:
                raise unknown_opponent(opponent)
        reward = a.game.stage_payoff(a.game.occupancy(log_normalize(opponent)[1]))
        return exact_q(a.game, a._policy, reward)


class SpecMarkovAgent(SpecAgentMixin, MarkovAgent):
    """A Markov agent whose per-state update is its spec's step on the hard Q.

    Keyword arguments are the spec's hyper-parameters, plus ``reference`` / ``magnet``
    (``(H, S, A)`` or ``(K, H, S, A)`` policies; the initial policy by default) when the
    step reads them.
    """

    family: ClassVar[str] = "markov"

    def __init__(self, game, learning_rate: float | None = None, **kwargs):
        spec = self.spec
        base = {k: kwargs.pop(k) for k in ("init_policy", "estimator", "n_samples", "seed", "verbose")
                if k in kwargs}
        policies = {k: kwargs.pop(k, None) for k in ("reference", "magnet") if k in spec.uses}
        lr = spec.default_learning_rate("markov") if learning_rate is None else learning_rate
        super().__init__(game, lr, **base)
        self._init_spec_hparams(kwargs)
        if "previous" in spec.uses and getattr(self.hp, "previous_at_start", "current") == "zero":
            self.prev_payoff = np.zeros_like(self._payoff)  # g_0 = 0 instead of 001's d^0 = d^1
        if "reference" in policies:
            self.ref_logits = self._log_policy(policies["reference"], "reference")
        if "magnet" in policies:
            self.magnet_logits = self._log_policy(policies["magnet"], "magnet")

    def _log_policy(self, policy, name: str) -> np.ndarray:
        if policy is None:
            return self.logits.copy()
        shape = self.game.policy_shape
        if np.shape(policy) not in (shape, shape[1:]):
            raise InvalidPolicyError(f"{name} must have shape (H, S, A) = {shape[1:]} or "
                                     f"(K, H, S, A) = {shape}; got {np.shape(policy)}")
        p = np.broadcast_to(self.game.check_policy(policy, name), shape)
        if (p <= 0).any():
            raise InvalidPolicyError(f"{name} must have full support")
        return log_normalize(np.log(p))[0]

    def _update(self) -> np.ndarray:
        new = self.spec.step(MarkovInputs(self), self.hp)
        self._refresh_magnet(new)
        return new


_CLASSES: dict[str, type[SpecMarkovAgent]] = {}


def markov_class(spec: AlgorithmSpec, name: str | None = None, module: str | None = None,
                 doc: str | None = None) -> type[SpecMarkovAgent]:
    """The Markov agent class of ``spec`` (built once, then the same class)."""
    if spec.name in _CLASSES:
        return _CLASSES[spec.name]
    # the tabular class, where there is one, has the plain name
    key = spec.name if "tabular" not in spec.families else f"{spec.name}_markov"
    attrs = {"spec": spec, "name": key, "family": "markov",
             "_hparam_names": spec.hparam_names,
             "_state_names": tuple(k for k, use in (("magnet_logits", "magnet"), ("ref_logits", "reference"))
                                   if use in spec.uses),
             "__doc__": doc or f"{spec.title} ({spec.paper}); per state on the hard Q of a Markov game.",
             "__module__": module or __name__}
    cls = _CLASSES[spec.name] = type(name or spec.generated_class_name("markov"), (SpecMarkovAgent,), attrs)
    return cls
