"""Magnetic mirror descent (000) lifted to the Markov game: per-state MMD on the hard Q."""

from __future__ import annotations

import numpy as np

from prefgym.agents.markov.base import MarkovAgent
from prefgym.agents.rules import log_normalize, magnetic_step
from prefgym.errors import InvalidPolicyError
from prefgym.validation import check_positive_float, check_positive_int

__all__ = ["MarkovMMD", "MagneticMPO"]


class MarkovMMD(MarkovAgent):
    """MMD of 000 applied at every ``(k, h, s)`` with ``Q^{pi^t, pi^t}`` as the payoff.

    ``pi_h ~ (pi_h magnet_h^{beta alpha} exp(beta Q_h))^{1 / (1 + beta alpha)}``, with
    ``Q_h`` the hard Q of ``pi^t`` for ``r^t = E_{d^t} r - 1/2`` (exact or sampled),
    the per-state lift of 000 Eq. (4) in the natural actor-critic shape of
    001 App. D. ``magnet_refresh_every=T_k`` resets the magnet to the current
    iterate every ``T_k`` updates (000 Sec. 3.2, MPO); ``None`` keeps it fixed.
    At ``H = 1`` this is the matrix :class:`~prefgym.agents.MMD`.

    Parameters
    ----------
    alpha
        Magnet strength.
    magnet
        Initial magnet ``(H, S, A)`` / ``(K, H, S, A)``; the initial policy by default.
    magnet_refresh_every
        Refresh period ``T_k`` or ``None``.
    """

    name = "mmd_markov"
    _hparam_names = ("alpha", "magnet_refresh_every")
    _state_names = ("magnet_logits",)

    def __init__(
        self,
        game,
        learning_rate: float = 0.1,
        alpha: float = 0.1,
        magnet: np.ndarray | None = None,
        magnet_refresh_every: int | None = None,
        **kwargs,
    ):
        super().__init__(game, learning_rate, **kwargs)
        self.alpha = check_positive_float(alpha, "alpha")
        self.magnet_refresh_every = None if magnet_refresh_every is None else \
            check_positive_int(magnet_refresh_every, "magnet_refresh_every")
        if magnet is None:
            self.magnet_logits = self.logits.copy()
        else:
            shape = self.game.policy_shape
            if np.shape(magnet) not in (shape, shape[1:]):
                raise InvalidPolicyError(f"magnet must have shape (H, S, A) = {shape[1:]} or "
                                         f"(K, H, S, A) = {shape}; got {np.shape(magnet)}")
            m = np.broadcast_to(self.game.check_policy(magnet, "magnet"), shape)
            if (m <= 0).any():
                raise InvalidPolicyError("magnet must have full support")
            self.magnet_logits = log_normalize(np.log(m))[0]

    @property
    def magnet_policy(self) -> np.ndarray:
        return np.exp(self.magnet_logits)

    def _update(self) -> np.ndarray:
        new = magnetic_step(self.logits, self._hard_q(), self.learning_rate, self.alpha, self.magnet_logits)
        k = self.magnet_refresh_every
        if k is not None and (self.num_iterations + 1) % k == 0:
            self.magnet_logits = log_normalize(new)[0]
        return new


class MagneticMPO(MarkovMMD):
    """000's Magnetic Preference Optimization on the Markov game: MMD with magnet refresh.

    :class:`MarkovMMD` with ``magnet_refresh_every`` defaulting to 100.
    """

    name = "magnetic_mpo"

    def __init__(self, game, learning_rate: float = 0.1, alpha: float = 0.1,
                 magnet_refresh_every: int | None = 100, **kwargs):
        super().__init__(game, learning_rate, alpha=alpha, magnet_refresh_every=magnet_refresh_every,
                         **kwargs)
