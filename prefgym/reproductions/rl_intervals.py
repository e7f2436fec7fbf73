"""Interval estimates the RL community reports: IQM and probability of improvement with bootstrap CIs.

Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice", the ``rliable``
package) recommend, for a few runs per task, the interquartile mean (IQM: the mean of the
middle 50% of all run x task scores) and the probability of improvement
``P(X > Y) = mean over tasks m of P(X_m > Y_m)``, where ``P(X_m > Y_m)`` is the
Mann-Whitney statistic ``U / (N M)``: the fraction of run pairs (x, y) on task ``m``
with ``x > y``, ties counting 1/2. Both come with 95% *stratified* bootstrap intervals:
each bootstrap sample redraws the runs with replacement within every task (the tasks
stay fixed), for ``P(X > Y)`` independently for X and Y; the interval is the
percentile interval of the bootstrap estimates.

Scores are ``{method: array (runs, tasks)}``. The point estimates are
``rliable.metrics.aggregate_iqm`` and ``rliable.metrics.probability_of_improvement``
(``pip install 'prefgym[rliable]'``). The bootstrap is done here, vectorised over
samples and seeded by a :class:`numpy.random.Generator`, for two reasons:
``rliable.library.StratifiedBootstrap`` (1.2.0) draws its indices from the *global*
``np.random`` state, so its ``random_state`` does not make an interval reproducible; and
it passes ``random_state`` to ``arch``'s bootstrap, which ``arch`` 8 rejects
(``arch`` 7 does not import under pandas 3). The resampling scheme is rliable's
(``StratifiedBootstrap`` / ``StratifiedIndependentBootstrap``, ``method="percentile"``);
the vectorised statistics equal rliable's metrics on every sample (tests). Same scores,
same ``seed`` -> the same intervals, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from prefgym.errors import InvalidArgumentError
from prefgym.optional import require

__all__ = [
    "DEFAULT_REPS",
    "Interval",
    "as_score_matrix",
    "iqm",
    "probability_of_improvement",
    "iqm_interval",
    "improvement_interval",
    "interval_estimates",
    "iqm_band",
    "judge",
]

#: bootstrap samples per interval (rliable's default is 50 000; 10 000 keeps the 2.5% / 97.5%
#: percentiles' Monte Carlo error well below the intervals' width at a few runs per task)
DEFAULT_REPS = 10_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its ``confidence`` percentile-bootstrap interval ``[low, high]``."""

    point: float
    low: float
    high: float
    confidence: float = 0.95
    reps: int = DEFAULT_REPS

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.point:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _metrics():
    return require("rliable.metrics", extra="rliable",
                   purpose="IQM and probability-of-improvement intervals need rliable")


def as_score_matrix(scores, name: str = "scores") -> np.ndarray:
    """``scores`` as a finite float array ``(runs, tasks)``; a 1-D array is one task."""
    a = np.asarray(scores, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise InvalidArgumentError(f"{name} must be an array (runs, tasks) with at least one run and "
                                   f"one task; got shape {np.shape(scores)}")
    if not np.isfinite(a).all():
        raise InvalidArgumentError(f"{name} must be finite; got {int((~np.isfinite(a)).sum())} "
                                   "non-finite entries")
    return a


def iqm(scores) -> float:
    """Interquartile mean over all runs and tasks (``rliable.metrics.aggregate_iqm``)."""
    return float(_metrics().aggregate_iqm(as_score_matrix(scores)))


def probability_of_improvement(x, y) -> float:
    """``P(X > Y)`` averaged over tasks (``rliable.metrics.probability_of_improvement``)."""
    x, y = as_score_matrix(x, "x"), as_score_matrix(y, "y")
    _check_tasks(x, y)
    return float(_metrics().probability_of_improvement(x, y))


def _check_tasks(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise InvalidArgumentError(f"x and y must have the same number of tasks (columns); got "
                                   f"{x.shape[1]} and {y.shape[1]}")


def _check(reps: int, confidence: float) -> None:
    if not isinstance(reps, (int, np.integer)) or reps < 1:
        raise InvalidArgumentError(f"reps must be a positive integer; got {reps!r}")
    if not 0.0 < confidence < 1.0:
        raise InvalidArgumentError(f"confidence must lie in (0, 1); got {confidence!r}")


def _resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``(reps, runs, tasks)``: runs redrawn with replacement within each task (stratified)."""
    n, tasks = scores.shape
    idx = rng.integers(0, n, size=(reps, n, tasks))
    return scores[idx, np.arange(tasks)]


def _percentiles(samples: np.ndarray, confidence: float, axis: int | None = None):
    """The two-sided ``confidence`` percentile interval of ``samples`` (along ``axis``)."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=axis)
    return low, high


def _iqm_batch(samples: np.ndarray) -> np.ndarray:
    """IQM of each ``samples[b]`` (all runs and tasks pooled), as ``aggregate_iqm``."""
    from scipy.stats import trim_mean

    return trim_mean(samples.reshape(samples.shape[0], -1), proportiontocut=0.25, axis=1)


def _improvement_batch(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``P(X > Y)`` of each sample pair ``x[b], y[b]`` (runs, tasks): pair count, ties 1/2."""
    diff = x[:, :, None, :] - y[:, None, :, :]  # (reps, runs_x, runs_y, tasks)
    per_task = ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2))
    return per_task.mean(axis=1)


def iqm_interval(scores, reps: int = DEFAULT_REPS, confidence: float = 0.95, seed: int = 0) -> Interval:
    """IQM of ``scores (runs, tasks)`` with its stratified-bootstrap percentile interval."""
    _check(reps, confidence)
    a = as_score_matrix(scores)
    rng = np.random.default_rng(seed)
    low, high = _percentiles(_iqm_batch(_resample(a, reps, rng)), confidence)
    return Interval(iqm(a), float(low), float(high), confidence, int(reps))


def improvement_interval(x, y, reps: int = DEFAULT_REPS, confidence: float = 0.95,
                         seed: int = 0) -> Interval:
    """``P(X > Y)`` with its interval; X's and Y's runs are redrawn independently within each task."""
    _check(reps, confidence)
    x, y = as_score_matrix(x, "x"), as_score_matrix(y, "y")
    _check_tasks(x, y)
    rng = np.random.default_rng(seed)
    xb, yb = _resample(x, reps, rng), _resample(y, reps, rng)
    low, high = _percentiles(_improvement_batch(xb, yb), confidence)
    return Interval(probability_of_improvement(x, y), float(low), float(high), confidence, int(reps))


def iqm_band(scores, reps: int = DEFAULT_REPS, confidence: float = 0.95,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``scores (runs, points)`` (e.g. evaluations along training): IQM over the runs
    and its bootstrap interval, runs redrawn within each column. Returns ``(iqm, low, high)``."""
    from scipy.stats import trim_mean

    _check(reps, confidence)
    a = as_score_matrix(scores)
    samples = trim_mean(_resample(a, reps, np.random.default_rng(seed)), proportiontocut=0.25, axis=1)
    low, high = _percentiles(samples, confidence, axis=0)
    return trim_mean(a, proportiontocut=0.25, axis=0), low, high


def interval_estimates(scores: Mapping[str, np.ndarray], pairs=(), reps: int = DEFAULT_REPS,
                       confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, Interval]]:
    """IQM of every method and ``P(X > Y)`` of every ``(X, Y)`` in ``pairs``, each with its interval.

    Returns ``{"iqm": {method: Interval}, "probability_of_improvement": {"X>Y": Interval}}``.
    Every interval has its own generator seeded by ``seed`` (so adding a method or a pair does
    not change the others).
    """
    if not scores:
        raise InvalidArgumentError("scores must name at least one method; got an empty mapping")
    out: dict[str, dict[str, Interval]] = {"iqm": {}, "probability_of_improvement": {}}
    for m, s in scores.items():
        out["iqm"][m] = iqm_interval(s, reps, confidence, seed)
    for x, y in pairs:
        for m in (x, y):
            if m not in scores:
                raise InvalidArgumentError(f"pair ({x!r}, {y!r}) names {m!r}, which is not among the "
                                           f"methods {sorted(scores)}")
        out["probability_of_improvement"][f"{x}>{y}"] = improvement_interval(
            scores[x], scores[y], reps, confidence, seed)
    return out


def judge(interval: Interval, threshold: float) -> str:
    """``"held"`` if ``interval`` lies above ``threshold``, ``"did not hold"`` if below, else inconclusive."""
    if interval.low > threshold:
        return "held"
    if interval.high < threshold:
        return "did not hold"
    return "inconclusive"
