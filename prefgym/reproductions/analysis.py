"""Measurements shared by the reproductions: tail fits, selection rules, CSV output."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "tail_fit",
    "first_below",
    "select_learning_rate",
    "write_curves_csv",
    "verdict",
    "fmt",
]


def tail_fit(gap: np.ndarray, floor: float = 1e-12) -> dict[str, float]:
    """Least-squares line through ``log10 gap`` over the final half of the pre-floor run.

    The pre-floor run is ``gap[:t_b]`` with ``t_b`` the first update whose gap
    is below ``floor`` (float64 round-off sits near ``1e-16``), or the whole run.
    Returns the slope in decades per 1000 updates, the fit's ``r2``, the window
    ``[start, stop)`` (0-based updates) and the decades dropped by the fitted line.
    """
    gap = np.asarray(gap, float)
    below = np.flatnonzero(gap < floor)
    stop = int(below[0]) if below.size else gap.shape[0]
    start = stop // 2
    if stop - start < 3:
        return {"slope_per_1000": float("nan"), "r2": float("nan"), "start": start, "stop": stop,
                "decades": float("nan")}
    t = np.arange(start, stop, dtype=float)
    y = np.log10(np.maximum(gap[start:stop], 1e-300))
    slope, intercept = np.polyfit(t, y, 1)
    resid = y - (slope * t + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return {"slope_per_1000": float(1000 * slope), "r2": r2, "start": start, "stop": stop,
            "decades": float(-slope * (stop - 1 - start))}


def first_below(gap: np.ndarray, threshold: float) -> np.ndarray:
    """1-based update after which ``gap`` stays below ``threshold`` (``-1`` if it ends above).

    ``gap`` has shape ``(T, *batch)``; the result has shape ``batch``.
    """
    gap = np.asarray(gap)
    above = gap >= threshold
    T = gap.shape[0]
    # last update at or above the threshold, +1 (0-based) -> 1-based index of the next update
    last_above = np.where(above.any(axis=0), T - 1 - np.argmax(above[::-1], axis=0), -1)
    out = last_above + 2
    return np.where(above[-1], -1, np.minimum(out, T)).astype(int)


def select_learning_rate(
    gaps: Mapping[float, np.ndarray], threshold: float
) -> tuple[float, dict[float, dict[str, float]]]:
    """002 App. D.3's rule: most games converged, then the smallest gap.

    ``gaps[eta]`` has shape ``(T, games)``. A game counts as converged when its
    final gap is below ``threshold``; ties are broken by the mean over updates
    and games of ``log10 gap`` (the area under the log curve, i.e. speed).
    """
    table: dict[float, dict[str, float]] = {}
    for eta, g in gaps.items():
        g = np.asarray(g, float)
        table[eta] = {
            "converged": int((g[-1] < threshold).sum()),
            "games": int(g.shape[1]),
            "final_gap_median": float(np.median(g[-1])),
            "final_gap_max": float(g[-1].max()),
            "mean_log10_gap": float(np.log10(np.maximum(g, 1e-300)).mean()),
        }
    best = max(table, key=lambda e: (table[e]["converged"], -table[e]["mean_log10_gap"]))
    return best, table


def write_curves_csv(path: Path, curves: Mapping[str, np.ndarray], max_rows: int = 3000) -> Path:
    """Write ``iteration`` and, per curve, mean / std / min / max over runs (wide format).

    ``curves[key]`` has shape ``(T,)`` or ``(T, runs)``; all share ``T``. Rows are
    every ``ceil(T / max_rows)``-th update, the last one always included.
    """
    arrays = {k: np.asarray(v, float).reshape(np.shape(v)[0], -1) for k, v in curves.items()}
    T = next(iter(arrays.values())).shape[0]
    stride = max(1, -(-T // max_rows))
    rows = np.unique(np.append(np.arange(0, T, stride), T - 1))
    header = ["iteration"]
    cols = [rows + 1.0]
    for key, arr in arrays.items():
        if arr.shape[0] != T:
            raise ValueError(f"curve {key!r} has {arr.shape[0]} updates; expected {T}")
        sub = arr[rows]
        header += [f"{key}_mean", f"{key}_std", f"{key}_min", f"{key}_max"]
        cols += [sub.mean(1), sub.std(1), sub.min(1), sub.max(1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in np.stack(cols, axis=1):
            writer.writerow([int(row[0]), *(f"{v:.6e}" for v in row[1:])])
    return path


def verdict(held: bool, detail: str) -> str:
    """``"held: detail"`` or ``"did not hold: detail"``."""
    return f"{'held' if held else 'did not hold'}: {detail}"


def fmt(x) -> str:
    """Compact scientific formatting of a number or a sequence of numbers."""
    if np.ndim(x):
        return "[" + ", ".join(fmt(v) for v in np.ravel(x)) + "]"
    return f"{float(x):.2g}"
