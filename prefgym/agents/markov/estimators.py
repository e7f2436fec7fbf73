"""Q-function estimators of the Markov agents: exact backward induction or 001's Monte Carlo.

Both return an array ``(K, H, S, A)`` (one slice per start state of the game),
the payoff fed to a per-state rule of :mod:`prefgym.algorithms.rules`. Stage
rewards are skew, ``r_h - 1/2``, as everywhere in prefgym, so a tie scores 0.

- :func:`exact_q`: ``Q_h = r_h + f V_{h+1}`` with the hard ``V_h = <pi_h, Q_h>``
  (001 Lemma 2) or the soft ``V_h = log <pi_h, exp(beta_h Q_h)> / beta_h`` (001 Thm 10).
- :func:`sampled_q`: 001 Eq. (2) (Algorithm 2), the Monte Carlo return-to-go of
  the (optimistic) step preference, an unbiased estimate of the hard Q.
"""

from __future__ import annotations

import numpy as np

from prefgym.algorithms.rules import optimistic_payoff
from prefgym.games.markov import TabularMarkovGame

__all__ = ["ESTIMATORS", "exact_q", "sampled_q"]

#: names accepted by the ``estimator`` argument of the Markov agents
ESTIMATORS = ("exact", "sampled")


def exact_q(game: TabularMarkovGame, policy: np.ndarray, stage_reward: np.ndarray,
            soft_beta: np.ndarray | float | None = None) -> np.ndarray:
    """Exact Q of ``policy`` for a stage reward ``(K, H, S, A)``: hard, or soft with ``beta_h``."""
    return game.q_values(policy, stage_reward, soft_beta=soft_beta)[0]


def sampled_q(
    game: TabularMarkovGame,
    policy: np.ndarray,
    n_samples: int,
    rng: np.random.Generator,
    prev_policy: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo ``Q-hat`` of 001 Eq. (2) from ``n_samples`` trajectory pairs.

    Draws ``n`` trajectories ``tau_i`` of ``policy`` and, from the same starts,
    ``n`` opponents ``tau'_i`` of ``policy`` and (if ``prev_policy`` is given)
    ``n`` opponents ``tau+_i`` of ``prev_policy``. The step score of ``tau_i`` is
    ``2 (P(tau_i,h > tau'_i,h) - 1/2) - (P(tau_i,h > tau+_i,h) - 1/2)`` (Eq. 2), or
    ``P(tau_i,h > tau'_i,h) - 1/2`` without ``prev_policy`` (Alg. 2's first
    iteration, and the non-optimistic agents). ``Q-hat_h(s, a)`` of start ``k``
    is the mean return-to-go ``sum_{tau >= h}`` of that score over the
    trajectories from ``k`` with ``(S_h, A_h) = (s, a)``.

    Only ``tau_i`` plays the first role, so given that ``tau_i`` visits
    ``(h, s, a)`` its opponents are still independent draws and the mean over
    visits is unbiased for the hard Q of ``policy`` under the stage reward
    ``r~ = 2 r(d^pi) - r(d^prev)`` (or ``r(d^pi)``), i.e. for
    ``2 Q(pi^t, pi^t) - Q(pi^t, pi^{t-1})`` (001 Sec. 3.2). Eq. (2) as printed
    divides by ``K`` instead of the visit count and conditions on ``S_1``
    (notes 001 Sec. 6.3); we use the visit mean, the estimate of ``Q`` itself.

    Unvisited ``(k, h, s, a)`` get ``Q-hat = 0``: the skew value of a tie, the
    counterpart of Alg. 2's ``log Z = beta (H - h + 1) / 2`` surrogate, so a rule
    leaves their logits unchanged (their probability still moves with the
    normalisation at a visited state).

    Returns
    -------
    q, counts
        ``Q-hat`` and the number of visits, both ``(K, H, S, A)``.
    """
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples}")
    n = int(n_samples)
    shape = game.policy_shape
    H = game.horizon
    steps = np.arange(H)
    starts, s, a = game.sample_trajectories(policy, n, rng)
    _, s2, a2 = game.sample_trajectories(policy, n, rng, starts=starts)
    score = game.preference.prob(steps, s, a, s2, a2) - 0.5  # (n, H)
    if prev_policy is not None:
        _, s3, a3 = game.sample_trajectories(prev_policy, n, rng, starts=starts)
        score = optimistic_payoff(score, game.preference.prob(steps, s, a, s3, a3) - 0.5)  # 2 r^t - r^{t-1}
    to_go = np.cumsum(score[:, ::-1], axis=1)[:, ::-1]  # sum_{tau = h}^{H} score_tau
    idx = np.ravel_multi_index((np.broadcast_to(starts[:, None], s.shape), np.broadcast_to(steps, s.shape),
                                s, a), shape).ravel()
    size = int(np.prod(shape))
    total = np.bincount(idx, weights=to_go.ravel(), minlength=size)
    counts = np.bincount(idx, minlength=size)
    q = np.divide(total, counts, out=np.zeros(size), where=counts > 0)
    return q.reshape(shape), counts.reshape(shape)
