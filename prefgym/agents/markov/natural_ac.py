"""MPO of 001 App. D (Algorithm 3): natural actor-critic self-play, from its spec."""

from __future__ import annotations

from prefgym.agents.markov.spec_agent import markov_class
from prefgym.algorithms import SPECS

__all__ = ["NaturalActorCriticMPO"]

NaturalActorCriticMPO = markov_class(
    SPECS["mpo_ac"], module=__name__,
    doc="""001's non-optimistic MPO baseline (App. D, Alg. 3): natural actor-critic.

    ``pi_h^{t+1}(a|s) ~ pi_h^t(a|s) exp(beta E_{d_h^t} Q_h^{pi^t, pi^t}(s, a, ., .))``,
    i.e. per-state MWU on the hard (standard) Q of ``pi^t`` for the stage reward
    ``r^t = E_{d^t} r - 1/2`` (Lemma 1 / Thm 8); exact, or the Monte Carlo
    ``Q-hat`` of Eq. (2) without its optimistic term (Alg. 4's Eq. 4).
    Thm 8's step is ``beta = sqrt(log(1/pi_min) / (T H^2))``.
    Not to be confused with :class:`~prefgym.agents.MPO`, 000's magnetic method.
    """)
