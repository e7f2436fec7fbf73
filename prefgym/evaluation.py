"""Evaluation of language-model policies: win rates with confidence intervals, exact duality gaps.

Two kinds of measurement (issue #5, item 3):

* **Win rate against the initial (SFT) model** under a judge,
  ``P(pi > pi_init) = E_x E_{y ~ pi, y' ~ pi_init} P(y > y' | x)``, from paired samples
  (:func:`win_rate_vs_initial`). With Bernoulli outcomes (``bernoulli=True``, a human
  rater's view) the interval is Wilson's score interval; with the judge's
  probabilities averaged (the default, lower variance) it is the normal interval of
  the mean. Comparisons are treated as independent; with few prompts and many samples
  per prompt the interval is optimistic (the prompts are a cluster).
* **Exact game quantities for a menu policy** (:class:`~prefgym.agents.llm.menu.MenuPolicy`)
  under an exact judge (:class:`~prefgym.judges.TableJudge`,
  :class:`~prefgym.judges.FeatureRaterJudge`):
  the menu game of each prompt is the matrix game ``P[i, j] = P(y_i > y_j | x)``
  (:func:`menu_game`), so the duality gap ``2 max_i P(y_i > pi) - 1`` of the policy's
  response distribution (002 Sec. 2), its exact win rate against any other menu policy
  and its KL to a target distribution are computed without sampling.
  :func:`menu_evaluator` packs them into the ``evaluator`` hook of
  :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from prefgym.games.matrix import MatrixGame

__all__ = [
    "WinRate",
    "wilson_interval",
    "normal_interval",
    "win_rate_vs_initial",
    "menu_game",
    "menu_duality_gap",
    "menu_win_rate",
    "kl_divergence",
    "entropy",
    "menu_evaluator",
]


@dataclass(frozen=True)
class WinRate:
    """A win rate with a confidence interval.

    Attributes
    ----------
    mean
        The estimate of ``P(pi > opponent)``.
    low, high
        The interval's ends.
    n
        Comparisons behind the estimate.
    method
        ``"wilson"``, ``"normal"`` or ``"exact"`` (no sampling: ``low = high = mean``).
    confidence
        Nominal coverage of the interval.
    """

    mean: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.method}, n={self.n})"


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    from scipy.stats import norm  # imported on use: scipy.stats is slow to import

    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion ``successes / n``.

    ``(c - h, c + h)`` with ``c = (p + z^2 / 2n) / (1 + z^2 / n)`` and
    ``h = z / (1 + z^2 / n) sqrt(p (1 - p) / n + z^2 / 4n^2)`` (Wilson 1927). Unlike the
    normal interval it stays inside ``[0, 1]`` and is not degenerate at ``p = 0`` or 1.
    """
    if n <= 0:
        raise ValueError(f"n must be positive; got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n = {n}]; got {successes}")
    z = _z(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def normal_interval(values: Sequence[float] | np.ndarray,
                    confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the normal interval ``mean +- z s / sqrt(n)`` (clipped to [0, 1])."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no values")
    m = float(x.mean())
    if x.size == 1:
        return m, 0.0, 1.0
    half = _z(confidence) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, max(0.0, m - half), min(1.0, m + half)


def _replies(policy, prompts: list[str], k: int, seed: int) -> list[str]:
    """``k`` replies per prompt (prompt-major) from an LMPolicy, a MenuPolicy or any TextGenerator."""
    from prefgym.llm.sampling import sample_k

    if hasattr(policy, "generate") and hasattr(policy, "reference_model"):  # LMPolicy: one batched call
        return policy.generate(prompts, num_return_sequences=k, seed=seed, compute_ref=False).texts
    return [r for group in sample_k(policy, prompts, k, seed=seed) for r in group]


def win_rate_vs_initial(
    policy,
    judge,
    prompts: Sequence[str],
    num_samples: int = 8,
    seed: int = 0,
    initial=None,
    bernoulli: bool = False,
    confidence: float = 0.95,
) -> WinRate:
    """Win rate of ``policy`` against the initial model under ``judge``, with a confidence interval.

    For every prompt, ``num_samples`` replies ``y_i ~ pi`` and ``y'_i ~ pi_init`` are paired
    and judged: ``P(y_i > y'_i | x)`` (one batched judge call).

    Parameters
    ----------
    policy
        An :class:`~prefgym.llm.policy.LMPolicy`, a :class:`~prefgym.agents.llm.menu.MenuPolicy`
        or any :class:`~prefgym.llm.base.TextGenerator`.
    judge
        A :class:`~prefgym.judges.base.PairwiseJudge`.
    prompts
        Evaluation prompts.
    num_samples
        Comparisons per prompt.
    seed
        Seeds both samplers (different streams) and the Bernoulli outcomes.
    initial
        The opponent; default the policy's reference model (``pi_init = pi_ref``), sampled
        with the policy's settings (for a menu policy: the reference's menu distribution).
    bernoulli
        Draw a 0/1 outcome per comparison and use Wilson's interval; otherwise average
        the judge's probabilities and use the normal interval.
    confidence
        Nominal coverage.
    """
    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.agents.llm.trainer import policy_view

    prompts = list(prompts)
    if initial is None:
        lm = policy.policy if isinstance(policy, MenuPolicy) else policy
        if getattr(lm, "reference_model", None) is None:
            raise ValueError("no initial policy: pass initial= or give the policy a reference model")
        initial = policy_view(lm, lm.reference_model)
        if isinstance(policy, MenuPolicy):
            initial = MenuPolicy(initial, policy.responses, append_eos=policy.append_eos,
                                 batch_size=policy.batch_size)
    k = int(num_samples)
    seeds = np.random.SeedSequence(int(seed)).generate_state(3)
    a = _replies(policy, prompts, k, int(seeds[0]))
    b = _replies(initial, prompts, k, int(seeds[1]))
    ctx = [p for p in prompts for _ in range(k)]
    p = judge.prob(ctx, a, b)
    if bernoulli:
        wins = (np.random.default_rng(int(seeds[2])).random(p.shape) < p).sum()
        lo, hi = wilson_interval(float(wins), p.size, confidence)
        return WinRate(float(wins) / p.size, lo, hi, int(p.size), "wilson", confidence)
    m, lo, hi = normal_interval(p, confidence)
    return WinRate(m, lo, hi, int(p.size), "normal", confidence)


# ------------------------------------------------------------------ exact menu quantities
def menu_game(judge, responses: Sequence[str], prompts: Sequence[str]) -> MatrixGame:
    """The batch of menu games ``P_b[i, j] = P(y_i > y_j | x_b)``, one per prompt (one judge call)."""
    from prefgym.llm.sampling import win_rate_matrices

    prompts = list(prompts)
    mats = win_rate_matrices(judge, prompts, [list(responses)] * len(prompts))
    return MatrixGame(np.stack(mats))


def _probs(menu_or_probs, prompts) -> np.ndarray:
    if isinstance(menu_or_probs, np.ndarray):
        return np.asarray(menu_or_probs, dtype=np.float64)
    return menu_or_probs.probs(list(prompts))


def menu_duality_gap(menu_or_probs, judge, prompts: Sequence[str],
                     responses: Sequence[str] | None = None) -> np.ndarray:
    """Exact duality gap of the menu policy's response distribution at every prompt, shape ``(B,)``.

    ``2 max_i P(y_i > pi | x) - 1`` (002 Sec. 2, the symmetric profile ``(pi, pi)``);
    0 exactly at a Nash equilibrium of the menu game. ``menu_or_probs`` is a
    :class:`~prefgym.agents.llm.menu.MenuPolicy` or a ``(B, N)`` array of its probabilities
    (then ``responses`` names the menu).
    """
    responses = menu_or_probs.responses if responses is None else responses
    return np.asarray(menu_game(judge, responses, prompts).duality_gap(_probs(menu_or_probs, prompts)))


def menu_win_rate(menu_or_probs, opponent_probs: np.ndarray, judge, prompts: Sequence[str],
                  responses: Sequence[str] | None = None) -> np.ndarray:
    """Exact ``P(pi > pi' | x) = pi^T P pi'`` per prompt, ``(B,)``; ``opponent_probs`` is ``(B, N)``."""
    responses = menu_or_probs.responses if responses is None else responses
    game = menu_game(judge, responses, prompts)
    pi = _probs(menu_or_probs, prompts)
    return np.einsum("bi,bij,bj->b", pi, game.preference, np.asarray(opponent_probs, dtype=np.float64))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``KL(p || q) = sum_i p_i log(p_i / q_i)`` over the last axis (``0 log 0 = 0``)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) over the last axis."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def menu_evaluator(menu, judge, prompts: Sequence[str], target: np.ndarray | None = None,
                   record_probs: bool = False) -> Callable[[object], dict[str, float]]:
    """An ``evaluator`` for :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` on a menu policy.

    Each call measures, over ``prompts`` and exactly: ``gap_mean`` / ``gap_max`` (duality
    gap), ``entropy``, ``win_rate_vs_initial`` (``P(pi > pi_ref)``, when the policy has a
    reference) and, with a ``target`` distribution ((N,) or (B, N)), ``kl_target_mean`` /
    ``kl_target_max`` = ``KL(target || pi)``. ``record_probs`` adds ``p{b}_{i}``, the
    probability of item ``i`` at prompt ``b``.
    """
    prompts = list(prompts)
    game = menu_game(judge, menu.responses, prompts)
    ref_probs = None
    if menu.policy.reference_model is not None:
        ref_probs = menu.probs(prompts, reference=True)
    tgt = None if target is None else np.broadcast_to(np.asarray(target, dtype=np.float64),
                                                       (len(prompts), menu.n))

    def evaluate(trainer=None) -> dict[str, float]:
        pi = menu.probs(prompts)
        gap = game.duality_gap(pi)
        out = {"gap_mean": float(gap.mean()), "gap_max": float(gap.max()),
               "entropy_menu": float(entropy(pi).mean())}
        if ref_probs is not None:
            wr = np.einsum("bi,bij,bj->b", pi, game.preference, ref_probs)
            out["win_rate_vs_initial"] = float(wr.mean())
        if tgt is not None:
            kl = kl_divergence(tgt, pi)
            out["kl_target_mean"], out["kl_target_max"] = float(kl.mean()), float(kl.max())
        if record_probs:
            out.update({f"p{b}_{i}": float(pi[b, i]) for b in range(pi.shape[0]) for i in range(pi.shape[1])})
        return out

    return evaluate
