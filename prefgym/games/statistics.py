"""Statistics of preference outcomes: win rates with confidence intervals and divergences.

Game-level and policy-agnostic (NumPy only), so that every layer above the games can
report a win rate or a KL without importing the language-model evaluators of
:mod:`prefgym.evaluation` (which re-exports these names).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["WinRate", "wilson_interval", "normal_interval", "kl_divergence", "entropy"]


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
