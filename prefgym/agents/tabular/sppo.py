"""Self-play preference optimisation (SPPO, Wu et al. 2024) with its nested solver."""

from __future__ import annotations

import numpy as np

from prefgym.agents.tabular.base import TabularAgent
from prefgym.algorithms.rules import mirror_step, regression_fit
from prefgym.validation import check_nonnegative_float, check_positive_float, check_positive_int

__all__ = ["SPPO"]


class SPPO(TabularAgent):
    """SPPO: ``pi_{t+1}(y) ~ pi_t(y) exp(eta P(y > pi_t))`` (Wu et al. Eq. 4.6).

    Realised, as in 002 App. D.2, by nested optimisation: at most
    ``inner_steps`` gradient steps (rate ``inner_lr``, independent of ``eta``)
    on ``E_{y ~ pi_t} (log pi(y)/pi_t(y) - eta (P(y > pi_t) - 1/2))^2``, stopping
    once successive losses differ by at most ``inner_tol``. ``inner_steps=None``
    takes the exact step, which makes SPPO identical to MD.
    """

    name = "sppo"
    _hparam_names = ("inner_steps", "inner_lr", "inner_tol")

    def __init__(self, game, learning_rate: float = 0.1, inner_steps: int | None = 10,
                 inner_lr: float = 1.0, inner_tol: float = 1e-10, **kwargs):
        super().__init__(game, learning_rate, **kwargs)
        self.inner_steps = None if inner_steps is None else check_positive_int(inner_steps, "inner_steps")
        self.inner_lr = check_positive_float(inner_lr, "inner_lr")
        self.inner_tol = check_nonnegative_float(inner_tol, "inner_tol")

    def _update(self) -> np.ndarray:
        target = mirror_step(self.logits, self._payoff, self.learning_rate)
        if self.inner_steps is None:
            return target
        fit, _ = regression_fit(self.logits, target, self._policy, self.inner_steps,
                                self.inner_lr, self.inner_tol)
        return fit
