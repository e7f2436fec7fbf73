"""The standard figures: duality gap / exploitability against updates."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from prefgym.fileio import atomic_write

__all__ = ["plot_curves", "plot_simplex_trajectories"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
    xlabel: str = "policy updates",
    ylabel: str = "duality gap",
    logy: bool = True,
    floor: float | None = 1e-16,
    styles: Mapping[str, dict] | None = None,
) -> Path:
    """Plot one curve per label; a 2-D array ``(T, runs)`` gets its mean and a one-std band.

    Values below ``floor`` are clipped to it on a log axis (float64 reaches 0).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, y in curves.items():
        y = np.asarray(y, float)
        x = np.arange(1, y.shape[0] + 1)
        style = dict((styles or {}).get(label, {}))
        if y.ndim == 2:
            mean, std = y.mean(axis=1), y.std(axis=1)
            lo, hi = mean - std, mean + std
            if logy and floor is not None:
                mean, lo, hi = (np.maximum(v, floor) for v in (mean, lo, hi))
            (line,) = ax.plot(x, mean, label=label, **style)
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        else:
            if logy and floor is not None:
                y = np.maximum(y, floor)
            ax.plot(x, y, label=label, **style)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:  # a killed run never leaves half a figure
        fig.savefig(fh, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def plot_simplex_trajectories(
    trajectories: Mapping[str, np.ndarray],
    path: str | Path,
    equilibria: Mapping[str, np.ndarray] | None = None,
    title: str = "",
) -> Path:
    """Draw policy trajectories of a 3-action game on the probability simplex.

    ``trajectories[label]`` has shape ``(T, 3)``; ``equilibria`` marks points.
    One panel per trajectory, as in 000 Figure 3.
    """
    plt = _pyplot()
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    k = len(trajectories)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.2), squeeze=False)
    for ax, (label, traj) in zip(axes[0], trajectories.items(), strict=True):
        xy = np.asarray(traj) @ corners
        ax.plot(*np.vstack([corners, corners[:1]]).T, color="0.5", lw=0.8)
        ax.plot(xy[:, 0], xy[:, 1], lw=0.8)
        ax.plot(*xy[0], "o", color="tab:green", ms=4, label="start")
        ax.plot(*xy[-1], "s", color="tab:red", ms=4, label="end")
        for name, point in (equilibria or {}).items():
            ax.plot(*(np.asarray(point) @ corners), "*", ms=9, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_aspect("equal")
        ax.axis("off")
    axes[0][0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:  # a killed run never leaves half a figure
        fig.savefig(fh, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
