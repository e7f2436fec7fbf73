"""OMPO (001 Alg. 1, Thm 10; Alg. 2 / Remark 5) and its non-optimistic form, Markov MD."""

from __future__ import annotations

import numpy as np

from prefgym.agents.markov.base import MarkovAgent, stage_learning_rates
from prefgym.agents.markov.estimators import exact_q
from prefgym.algorithms.rules import mirror_step, optimistic_payoff
from prefgym.validation import check_choice

__all__ = ["OMPO", "MarkovMD"]

FORMS = ("occupancy", "policy")


class OMPO(MarkovAgent):
    """Optimistic Multi-step Preference Optimization (001), self-play form (Thm 5).

    The optimistic stage reward is ``r~_h^t = E_{2 d_h^t - d_h^{t-1}} r_h - 1/2``
    with ``d^0 = d^1`` (001 Alg. 1), so the first step is non-optimistic.

    - ``form="occupancy"``: 001 Alg. 1, optimistic OMD over occupancy measures
      with the conditional relative entropy summed over earlier stages (Eq. 7),
      solved exactly in policy space by Thm 10: ``pi_h ~ pi_h exp(beta_h Q_h)``,
      ``beta_h = beta / (H - h + 1)``, ``Q`` the soft-Bellman Q of ``r~``.
      Exact Q only (a soft Q has no Monte Carlo estimate).
    - ``form="policy"``: the hard-Q form of 001 Thm 7 / Remark 5 / Alg. 2:
      ``pi_h ~ pi_h exp(beta Q_h)`` with the *undivided* ``beta`` of Alg. 2 and
      ``Q`` the standard Q of ``pi^t`` for ``r~``, i.e. ``2 Q(pi^t, pi^t) -
      Q(pi^t, pi^{t-1})`` (Sec. 3.2); exact, or sampled by Eq. (2).

    At ``H = 1`` both forms are OMWU with ``eta = beta`` started from
    ``g_0 = g_1`` (OMWU itself starts from ``g_0 = 0``).

    Parameters
    ----------
    learning_rate
        ``beta``; Thm 4 asks ``beta <= 1/sqrt(2)`` for the occupancy form.
    form
        ``"occupancy"`` (default) or ``"policy"``.
    """

    name = "ompo"
    _hparam_names = ("form",)

    def __init__(self, game, learning_rate: float = 0.5, form: str = "occupancy", **kwargs):
        check_choice(form, "form", FORMS)
        self.form = form
        super().__init__(game, learning_rate, **kwargs)
        self._betas = stage_learning_rates(self.learning_rate, self.game.horizon)

    def _uses_soft_q(self) -> bool:
        return self.form == "occupancy"

    def _update(self) -> np.ndarray:
        if self.form == "occupancy":
            reward = optimistic_payoff(self._payoff, self.prev_payoff)  # r~^t, Alg. 1
            q = exact_q(self.game, self._policy, reward, soft_beta=self._betas)  # Thm 10 soft Bellman
            return mirror_step(self.logits, q, self._betas[:, None, None])
        return mirror_step(self.logits, self._hard_q(optimistic=True), self.learning_rate)


class MarkovMD(MarkovAgent):
    """Mirror descent over occupancy measures: OMPO's occupancy form without optimism.

    ``d^{t+1} = argmax <d, r^t> - sum_h (H - h + 1) H(d_h, d_h^t) / beta`` (001 Eq. 7
    with ``r^t`` for ``r~^t``), solved by Thm 10: ``pi_h ~ pi_h exp(beta_h Q_h)`` with
    the soft-Bellman Q of ``r^t`` and ``beta_h = beta / (H - h + 1)``; the MD/MWU
    baseline. It differs from :class:`NaturalActorCriticMPO` (001 App. D) only in the
    Q (soft vs hard) and the step (``beta_h`` vs ``beta``); at ``H = 1`` both are MWU.
    Exact Q only.
    """

    name = "md_markov"
    _soft_q = True

    def __init__(self, game, learning_rate: float = 0.5, **kwargs):
        super().__init__(game, learning_rate, **kwargs)
        self._betas = stage_learning_rates(self.learning_rate, self.game.horizon)

    def _update(self) -> np.ndarray:
        q = exact_q(self.game, self._policy, self._payoff, soft_beta=self._betas)
        return mirror_step(self.logits, q, self._betas[:, None, None])
