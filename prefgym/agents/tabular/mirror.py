"""Unregularised mirror descent: MD/MWU, OMWU (002) and ONPO (002 App. D.2)."""

from __future__ import annotations

import numpy as np

from prefgym.agents.tabular.base import TabularAgent
from prefgym.agents.tabular.spec_agent import tabular_class
from prefgym.algorithms import SPECS
from prefgym.algorithms.rules import log_normalize, regression_fit
from prefgym.validation import check_nonnegative_float, check_positive_float, check_positive_int

__all__ = ["MWU", "OMWU", "ONPO"]


MWU = tabular_class(
    SPECS["md"], module=__name__,
    doc="""Mirror descent / multiplicative weights, ``pi_{t+1} ~ pi_t exp(eta A pi_t)``.

    002's "OMD" baseline and 000's "MD": the average iterate converges, the
    last iterate cycles around the NE (000 Fig. 3).
    """)

OMWU = tabular_class(
    SPECS["omwu"], module=__name__,
    doc="""Optimistic multiplicative weights (002 Sec. 3.3, Eqs. 1-2).

    Single-sequence form ``pi_{t+1} ~ pi_t exp(eta (2 A pi_t - A pi_{t-1}))``.
    The two initialisations of 002 are equal, ``pi_0 = pihat_1 = init`` with
    ``g_0 = 0`` (``previous_at_start="zero"``), so the first step is ``pi_2 ~ pi_1 exp(2 eta A pi_1)``.
    Last-iterate linear convergence under a full-support NE (Theorem 2).
    The default ``eta = 2`` reached a gap below 1e-6 in 9 of 10 of 002's
    Algorithm-1 games (n = 10, rank 3) within 30 000 updates; 4 in 10 of 10,
    8 diverged on 7 (``prefgym reproduce omwu-fig2``, BENCHMARKS.md).
    """)


class ONPO(TabularAgent):
    """Optimistic online mirror descent with nested optimisation (ONPO, 002 App. D.2).

    Two prox steps per iteration (Zhang et al. 2025, Sec. 4.2):
    ``pihat_{t+1} = argmax eta <pi, A pi_t> - KL(pi || pihat_t)`` and
    ``pi_{t+1} = argmax eta <pi, A pi_t> - KL(pi || pihat_{t+1})``, each solved
    by :func:`~prefgym.algorithms.rules.regression_fit` (``inner_steps`` gradient
    steps on the SPPO-style squared loss, samples from ``pi_t``). With
    ``inner_steps=None`` both prox steps are exact and ONPO equals OMWU.
    """

    name = "onpo"
    _hparam_names = ("inner_steps", "inner_lr", "inner_tol")
    _state_names = ("hat_logits",)

    def __init__(
        self,
        game,
        learning_rate: float = 0.1,
        inner_steps: int | None = 10,
        inner_lr: float = 1.0,
        inner_tol: float = 1e-10,
        **kwargs,
    ):
        super().__init__(game, learning_rate, **kwargs)
        self.inner_steps = None if inner_steps is None else check_positive_int(inner_steps, "inner_steps")
        self.inner_lr = check_positive_float(inner_lr, "inner_lr")
        self.inner_tol = check_nonnegative_float(inner_tol, "inner_tol")
        self.hat_logits = self.logits.copy()

    def _prox(self, start: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self.inner_steps is None:
            return target
        fit, _ = regression_fit(start, target, self._policy, self.inner_steps, self.inner_lr,
                                self.inner_tol)
        return fit

    def _update(self) -> np.ndarray:
        step = self.learning_rate * self._payoff
        self.hat_logits = log_normalize(self._prox(self.hat_logits, self.hat_logits + step))[0]
        return self._prox(self.hat_logits, self.hat_logits + step)
