"""Soft preference optimisation (003) over the exact pair distribution of a game."""

from __future__ import annotations

import numpy as np

from prefgym.agents.tabular.base import TabularAgent
from prefgym.algorithms.rules import kl_gradient, spo_gradient
from prefgym.validation import check_float, check_nonnegative_float

__all__ = ["SPO"]


class SPO(TabularAgent):
    """Tabular SPO: gradient descent on ``L_pref^alpha + beta KL(pi || ref)`` (003 Eq. 6).

    The data are the game's own comparisons: an unordered pair drawn uniformly
    (``s(y1, y2) = 1/n^2``, symmetric positive) and labelled by the preference,
    ``D(y_w, y_l) = P(y_w > y_l) / n^2``. Under Bradley-Terry preferences with
    rewards ``r`` and ``beta = 0`` the unique minimiser is ``Softmax(r / alpha)``
    (003 Theorem 1), whatever the weights ``mu = (pi_w + pi_l)^gamma``
    (Theorem 2). SPO fits a *soft* expert, so on a transitive game its gap
    stays positive for ``alpha > 0``; on a non-transitive game it is a fitting
    baseline, not a game solver.

    Parameters
    ----------
    alpha
        Softness (Eq. 9); ``0`` gives the limit loss of Eq. 10.
    beta
        Weight of the global KL regulariser to ``reference`` (initial policy by default).
    gamma
        Exponent of the pair weights ``mu`` (Eq. 11), stop-gradient.
    """

    name = "spo"
    _hparam_names = ("alpha", "beta", "gamma", "reference")

    def __init__(self, game, learning_rate: float = 1.0, alpha: float = 1.0, beta: float = 0.0,
                 gamma: float = 0.0, reference: np.ndarray | None = None, **kwargs):
        super().__init__(game, learning_rate, **kwargs)
        self.alpha = check_nonnegative_float(alpha, "alpha")
        self.beta = check_nonnegative_float(beta, "beta")
        self.gamma = check_float(gamma, "gamma")
        self.reference = None if reference is None else self.game._strategy(reference, "reference")
        ref = self.init_policy if reference is None else self.game.check_policy(reference, "reference")
        self.ref_logits = np.log(np.broadcast_to(ref, self.logits.shape))
        n = self.game.n_actions
        self.pair_weights = self.game.preference / n**2

    def loss(self) -> np.ndarray:
        """``L_pref^alpha`` (Eq. 9; Eq. 10 for alpha = 0) plus ``beta KL`` at the last iterate."""
        lp = self.logits
        d = lp[..., :, None] - lp[..., None, :]  # log pi_w - log pi_l
        if self.alpha > 0:
            per_pair = np.logaddexp(0.0, -self.alpha * d) / self.alpha  # -(1/a) log sigma(a d)
        else:
            per_pair = -0.5 * d
        mu = (self._policy[..., :, None] + self._policy[..., None, :]) ** self.gamma
        pref = (self.pair_weights * mu * per_pair).sum(axis=(-2, -1))
        kl = (self._policy * (lp - self.ref_logits)).sum(axis=-1)
        return pref + self.beta * kl

    def _update(self) -> np.ndarray:
        grad = spo_gradient(self.logits, self._policy, self.pair_weights, self.alpha, self.gamma)
        if self.beta:
            grad = grad + self.beta * kl_gradient(self.logits, self._policy, self.ref_logits)
        return self.logits - self.learning_rate * grad
