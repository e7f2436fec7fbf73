"""KL-regularised self-play: Nash-MD ("OMD (regularized)" of 002) and EGPO."""

from __future__ import annotations

import numpy as np

from prefgym.agents.rules import geometric_mixture, log_normalize, regularized_step
from prefgym.agents.tabular.base import TabularAgent
from prefgym.errors import InvalidArgumentError
from prefgym.validation import check_nonnegative_float, check_probability

__all__ = ["NashMD", "EGPO"]


class _Regularized(TabularAgent):
    _hparam_names = ("tau", "reference")

    def __init__(self, game, learning_rate: float = 0.1, tau: float = 0.01,
                 reference: np.ndarray | None = None, **kwargs):
        super().__init__(game, learning_rate, **kwargs)
        tau = check_nonnegative_float(tau, "tau")
        if self.learning_rate * tau > 1:
            raise InvalidArgumentError(f"learning_rate * tau must be <= 1; got {self.learning_rate * tau:g}")
        self.tau = tau
        self.reference = None if reference is None else self.game._strategy(reference, "reference")
        ref = self.init_policy if reference is None else self.game.check_policy(reference, "reference")
        with np.errstate(divide="ignore"):
            self.ref_logits = log_normalize(np.log(np.broadcast_to(ref, self.logits.shape)))[0]

    def regularized_gap(self) -> np.ndarray:
        """Duality gap of the KL-regularised game (002 Sec. 3.2) at the last iterate."""
        return self.game.regularized_duality_gap(self._policy, self.tau, np.exp(self.ref_logits))


class NashMD(_Regularized):
    """Nash mirror descent (Munos et al. 2023, Eq. 8), 002's "OMD (regularized)".

    ``pi_t^mix ~ pi_t^{1 - beta} ref^beta`` with ``beta = eta tau`` (or
    ``mixture``), then ``pi_{t+1} ~ pi_t^{1 - eta tau} ref^{eta tau} exp(eta A pi_t^mix)``.
    Converges to the regularised NE, so its gap in the original game plateaus.
    """

    name = "nash_md"
    _hparam_names = ("tau", "reference", "mixture")

    def __init__(self, game, learning_rate: float = 0.1, tau: float = 0.01,
                 mixture: float | None = None, **kwargs):
        super().__init__(game, learning_rate, tau=tau, **kwargs)
        self.mixture = None if mixture is None else check_probability(mixture, "mixture")

    def _update(self) -> np.ndarray:
        beta = self.learning_rate * self.tau if self.mixture is None else self.mixture
        mix = log_normalize(geometric_mixture(self.logits, self.ref_logits, beta))[1]
        g_mix = self.game._payoff_vector(mix)
        return regularized_step(self.logits, g_mix, self.learning_rate, self.tau, self.ref_logits)


class EGPO(_Regularized):
    """Extragradient preference optimisation (Zhou et al. 2025, Eqs. 2-3).

    ``pi_{t+1/2} ~ pi_t^{1-eta tau} ref^{eta tau} exp(eta A pi_t)``, then the
    same step from ``pi_t`` with the payoff of ``pi_{t+1/2}``.
    """

    name = "egpo"

    def _update(self) -> np.ndarray:
        lr, tau = self.learning_rate, self.tau
        half = log_normalize(regularized_step(self.logits, self._payoff, lr, tau, self.ref_logits))[1]
        return regularized_step(self.logits, self.game._payoff_vector(half), lr, tau, self.ref_logits)
