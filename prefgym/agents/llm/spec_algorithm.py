"""The LLM adapter: any :class:`~prefgym.algorithms.AlgorithmSpec` as a self-play loss.

At the start of an iteration the spec's step runs on the group of ``K`` responses per
state: ``logits`` are their sequence log-probs ``log pi_t(y)``, ``payoff(opponent)`` the
judge's win rates against the opponent minus 1/2 (the previous iterate and the magnet
are frozen snapshots, a log-policy opponent such as a geometric mixture is reweighted
over the group by self-normalised importance weights), and ``reference`` the reference
model's log-probs. The step's output ``c`` is the target of the generalised IPO loss
``E (h(y) - h(y'))^2`` with ``h = log pi_theta - c`` (002 Sec. 5.2), whose minimiser is
exactly the step's policy on the support of the group: contrasts cancel the normaliser.
The pairs are uniform over the group (002's ``rho = mu``), on a menu too.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from prefgym.agents.llm.algorithms import SelfPlayAlgorithm, SelfPlayBatch
from prefgym.agents.llm.losses import LossOutput
from prefgym.agents.llm.losses.omwu import generalized_ipo_loss
from prefgym.algorithms.spec import AlgorithmSpec, magnet_refresh_due, unknown_opponent

__all__ = ["SpecAlgorithm", "LLMInputs", "llm_algorithm_class"]


class LLMInputs:
    """:class:`~prefgym.algorithms.StepInputs` of a group of responses at the start of an iteration."""

    def __init__(self, algorithm: SpecAlgorithm, trainer, batch: SelfPlayBatch, iteration: int):
        self._algo, self._trainer, self._batch, self._iteration = algorithm, trainer, batch, iteration
        self.logits = batch.old_logp
        self.lr = algorithm.eta
        self.reference = batch.ref_logp
        self._magnet: Tensor | None = None

    @property
    def magnet(self) -> Tensor:
        """The frozen magnet's log-probs of the group."""
        if self._magnet is None:
            self._magnet = self._trainer.source.logp(self._batch, requires_grad=False,
                                                     policy=self._trainer.snapshot("magnet"))
        return self._magnet

    def _against(self, snapshot: str) -> Tensor:
        t = self._trainer
        return t.source.win_rates_against(self._batch, t.snapshot(snapshot),
                                          seed=t.iteration_seed(self._iteration, snapshot))[0]

    def payoff(self, opponent: Any = "current") -> Tensor:
        """``P(y > opponent) - 1/2`` of every response of the group, (B, K); kept in
        ``batch.extra["payoffs"][opponent]`` for a named opponent."""
        if not isinstance(opponent, str):
            return self._payoff(opponent)
        payoffs = self._batch.extra.setdefault("payoffs", {})
        if opponent not in payoffs:
            payoffs[opponent] = self._payoff(opponent)
        return payoffs[opponent]

    def _payoff(self, opponent: Any) -> Tensor:
        batch = self._batch
        if isinstance(opponent, str):
            if opponent == "current":
                return batch.win_rate - 0.5
            if opponent == "previous":
                if not self._algo._has_previous:  # the first iteration: g_0 = 0 or g_1 (pi_0 = pi_1)
                    start = getattr(self._algo.hparams_ns, "previous_at_start", "current")
                    return torch.zeros_like(batch.win_rate) if start == "zero" else batch.win_rate - 0.5
                return self._against("previous") - 0.5  # P(y > pi_{t-1}) - 1/2
            if opponent == "magnet":
                return self._against("magnet") - 0.5
            raise unknown_opponent(opponent)
        return self._trainer.source.win_rates_mixture(batch, opponent.detach()) - 0.5


class SpecAlgorithm(SelfPlayAlgorithm):
    """Base of the generated LLM algorithms: ``eta`` plus the spec's hyper-parameters as fields."""

    spec: ClassVar[AlgorithmSpec]
    eta: float

    @property
    def snapshots(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(s for s in ("previous", "magnet") if s in self.spec.uses)

    def needs_reference(self) -> bool:
        return "reference" in self.spec.uses

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in self.spec.hparam_names}
        self.hparams_ns = self.spec.check_hparams(values, float(self.eta), "llm")
        self._has_previous = False

    def prepare(self, trainer, batch, iteration):
        target = self.spec.step(LLMInputs(self, trainer, batch, iteration), self.hparams_ns)
        batch.extra["target"] = target.detach()
        if "previous" in self.spec.uses:
            trainer.refresh_snapshot("previous")  # pi_t is the next iteration's pi_{t-1}
            self._has_previous = True

    def exact_step(self, batch):
        return batch.extra["target"]

    def loss(self, trainer, batch, logp, iteration) -> LossOutput:
        # every ordered pair of the group, rho = mu uniform (002 Sec. 5.2's choice, also on a menu)
        target = batch.extra["target"].to(logp.device)
        return generalized_ipo_loss(logp, target, base_logp=torch.zeros_like(target))

    def end_iteration(self, trainer, iteration):
        if magnet_refresh_due(iteration, self.spec.refresh_period(self.hparams_ns)):
            trainer.refresh_snapshot("magnet")

    def state_dict(self) -> dict[str, Any]:
        return {"has_previous": self._has_previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._has_previous = bool(state.get("has_previous", False))


_CLASSES: dict[str, type[SpecAlgorithm]] = {}


def llm_algorithm_class(spec: AlgorithmSpec) -> type[SpecAlgorithm]:
    """The dataclass that runs ``spec`` in the self-play trainer (built once, then the same class)."""
    if spec.name not in _CLASSES:
        fields = [("eta", float, field(default=spec.default_learning_rate("llm")))]
        fields += [(h.name, Any, field(default=h.default_for("llm"))) for h in spec.hparams]
        doc = (f"{spec.title} ({spec.paper}).\n\n    The spec's step, realised by the generalised IPO loss "
               f"(:mod:`{__name__}`); fields: ``eta`` (step size) and "
               f"{', '.join(spec.hparam_names) or 'none'}.")
        _CLASSES[spec.name] = make_dataclass(
            spec.generated_class_name("llm"), fields, bases=(SpecAlgorithm,),
            namespace={"name": spec.name, "spec": spec, "__doc__": doc, "__module__": __name__})
    return _CLASSES[spec.name]
