"""What the tabular and Markov spec adapters share: their step inputs and their spec bookkeeping."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from prefgym.algorithms.rules import log_normalize
from prefgym.algorithms.spec import AlgorithmSpec, magnet_refresh_due

__all__ = ["AgentInputs", "SpecAgentMixin"]


class AgentInputs:
    """:class:`~prefgym.algorithms.StepInputs` of an agent at its current iterate; a family
    implements :meth:`payoff`."""

    def __init__(self, agent):
        self._agent = agent
        self.logits = agent.logits
        self.lr = agent.learning_rate
        self.reference = getattr(agent, "ref_logits", None)
        self.magnet = getattr(agent, "magnet_logits", None)

    def payoff(self, opponent: Any = "current") -> np.ndarray:
        raise NotImplementedError


class SpecAgentMixin:
    """A spec's hyper-parameters, magnet schedule and config on a :class:`~prefgym.agents.BaseAgent`."""

    spec: ClassVar[AlgorithmSpec]
    family: ClassVar[str]

    def _init_spec_hparams(self, values: dict[str, Any]) -> None:
        """Check the spec's hyper-parameters (defaults filled in) and set them as attributes."""
        self.hp = self.spec.check_hparams(values, self.learning_rate, self.family)
        for name, value in vars(self.hp).items():
            setattr(self, name, value)

    def _refresh_magnet(self, new: np.ndarray) -> None:
        """000 Sec. 3.2: the magnet becomes ``pi_{t+1}`` on the spec's schedule."""
        if magnet_refresh_due(self.num_iterations, self.spec.refresh_period(self.hp)):
            self.magnet_logits = log_normalize(new)[0]

    @property
    def magnet_policy(self) -> np.ndarray:
        return np.exp(self.magnet_logits)

    @property
    def config(self):
        """This agent's settings as the spec's frozen dataclass (``spec.config_class(family)``)."""
        return self.spec.config_class(self.family)(learning_rate=self.learning_rate, **vars(self.hp))

    @classmethod
    def _hparam_defaults(cls) -> dict[str, Any]:
        return {**super()._hparam_defaults(), "learning_rate": cls.spec.default_learning_rate(cls.family),
                **cls.spec.defaults(cls.family), **getattr(cls, "_extra_defaults", {})}
