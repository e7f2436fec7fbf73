"""Magnetic mirror descent (MMD) and its magnet-refreshing form, tabular MPO (000)."""

from __future__ import annotations

import numpy as np

from prefgym.agents.rules import log_normalize, magnetic_step, regression_fit
from prefgym.agents.tabular.base import TabularAgent
from prefgym.validation import check_positive_float, check_positive_int

__all__ = ["MMD", "MPO"]


class MMD(TabularAgent):
    """Magnetic mirror descent (000 Eq. 4, closed form in 000 Sec. 3.1).

    ``pi_{t+1} ~ (pi_t magnet^{eta alpha} exp(eta A pi_t))^{1/(1 + eta alpha)}``.
    With a fixed magnet the last iterate converges linearly to the regularised
    NE ``pi ~ magnet exp(A pi / alpha)`` (000 Thm 3.2), not to the NE of the game.
    ``magnet_refresh_every=K`` sets the magnet to the current iterate every
    ``K`` updates (000 Sec. 3.2): that is MPO, whose last iterate reaches the
    NE of the original game (000 Thm 3.7).

    Parameters
    ----------
    alpha
        Magnet (regularisation) strength.
    magnet
        Initial magnet; the initial policy by default.
    magnet_refresh_every
        Refresh period ``T_k``; ``None`` keeps the magnet fixed.
    inner_steps
        ``None`` takes the exact closed-form step; an integer solves it by that
        many steps of the nested regression of 002's MPO baseline.
    """

    name = "mmd"
    _hparam_names = ("alpha", "magnet", "magnet_refresh_every", "inner_steps", "inner_lr")
    _state_names = ("magnet_logits",)

    def __init__(
        self,
        game,
        learning_rate: float = 0.1,
        alpha: float = 0.1,
        magnet: np.ndarray | None = None,
        magnet_refresh_every: int | None = None,
        inner_steps: int | None = None,
        inner_lr: float = 1.0,
        **kwargs,
    ):
        super().__init__(game, learning_rate, **kwargs)
        self.alpha = check_positive_float(alpha, "alpha")
        if magnet_refresh_every is not None:
            magnet_refresh_every = check_positive_int(magnet_refresh_every, "magnet_refresh_every")
        self.magnet = None if magnet is None else self.game._strategy(magnet, "magnet")
        self.magnet_refresh_every = magnet_refresh_every
        self.inner_steps = None if inner_steps is None else check_positive_int(inner_steps, "inner_steps")
        self.inner_lr = check_positive_float(inner_lr, "inner_lr")
        if self.magnet is None:
            self.magnet_logits = self.logits.copy()
        else:
            m = self.game.check_policy(self.magnet, "magnet")
            with np.errstate(divide="ignore"):
                self.magnet_logits = log_normalize(np.log(np.broadcast_to(m, self.logits.shape)))[0]

    @property
    def magnet_policy(self) -> np.ndarray:
        return np.exp(self.magnet_logits)

    def _update(self) -> np.ndarray:
        target = magnetic_step(self.logits, self._payoff, self.learning_rate, self.alpha,
                               self.magnet_logits)
        new = target
        if self.inner_steps is not None:
            new, _ = regression_fit(self.logits, target, self._policy, self.inner_steps,
                                    self.inner_lr)
        k = self.magnet_refresh_every
        if k is not None and (self.num_iterations + 1) % k == 0:
            self.magnet_logits = log_normalize(new)[0]
        return new


class MPO(MMD):
    """Tabular Magnetic Preference Optimization: MMD with magnet refresh (000 Sec. 3.2).

    Defaults from our calibration on random n = 10 games (see BENCHMARKS.md):
    ``eta = 1``, ``alpha = 0.05``, refresh every 100 updates.
    """

    name = "mpo"

    def __init__(
        self,
        game,
        learning_rate: float = 1.0,
        alpha: float = 0.05,
        magnet_refresh_every: int | None = 100,
        **kwargs,
    ):
        super().__init__(game, learning_rate, alpha=alpha,
                         magnet_refresh_every=magnet_refresh_every, **kwargs)
