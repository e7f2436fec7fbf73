"""``rgb_array`` pictures of the matrix-game and text envs (matplotlib Agg, no display needed).

Every frame of an env has the same shape, so video recorders
(``gymnasium.wrappers.RecordVideo``) and SB3's ``VecVideoRecorder`` accept
them. matplotlib is imported on the first frame only, and only its
object-oriented Agg API is used (no ``pyplot``): rendering never changes the
user's matplotlib backend or opens a window.

- :func:`matrix_frame`: the preference matrix ``P`` as a heat map with the last
  pair of actions boxed, between two bar charts (one per player: a mixed
  strategy or the episode's action frequencies, the last action highlighted).
- :func:`text_frame`: two transcripts side by side in a monospace font, under
  a one-line header.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BarPanel", "MATRIX_FRAME_SIZE", "TEXT_FRAME_SIZE", "matrix_frame", "text_frame"]

MATRIX_FRAME_SIZE = (260, 780)  # (height, width) in pixels
TEXT_FRAME_SIZE = (480, 960)
_DPI = 100
_BAR = "#9db4d6"
_LAST = "#e66e00"


@dataclass(frozen=True)
class BarPanel:
    """One player's bar chart: ``values`` over the actions, ``last`` action highlighted (or None)."""

    title: str
    values: np.ndarray
    last: int | None = None


def _figure(size: tuple[int, int]):
    from matplotlib.figure import Figure

    h, w = size
    return Figure(figsize=(w / _DPI, h / _DPI), dpi=_DPI)


def _to_array(fig, size: tuple[int, int]) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    h, w = size
    return np.ascontiguousarray(rgb[:h, :w], dtype=np.uint8)


def _bars(ax, panel: BarPanel) -> None:
    n = panel.values.size
    colours = [_LAST if i == panel.last else _BAR for i in range(n)]
    ax.bar(np.arange(n), panel.values, color=colours, edgecolor="#333333", linewidth=0.5)
    ax.set_ylim(0.0, 1.0)
    ax.set_title(panel.title, fontsize=9)
    ax.set_xticks(np.arange(n) if n <= 12 else np.linspace(0, n - 1, 6).round().astype(int))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("action", fontsize=8)


def matrix_frame(preference: np.ndarray, left: BarPanel, right: BarPanel,
                 last_pair: tuple[int, int] | None, header: str,
                 players: tuple[str, str] = ("player_0", "player_1")) -> np.ndarray:
    """A ``MATRIX_FRAME_SIZE + (3,)`` ``uint8`` picture of one round of a matrix preference game.

    Parameters
    ----------
    preference
        The ``(n, n)`` matrix ``P[a, b] = P(a beats b)``, drawn as a heat map
        (rows: the left player's actions, columns: the right player's).
    left, right
        The two players' bar charts.
    last_pair
        ``(a, b)`` of the last round, boxed in the heat map; None before the first round.
    header
        One line over the picture (round, win probability, reward).
    players
        Names of the row and column players (heat-map axis labels).
    """
    fig = _figure(MATRIX_FRAME_SIZE)
    grid = fig.add_gridspec(1, 3, left=0.05, right=0.98, bottom=0.17, top=0.8, wspace=0.35)
    _bars(fig.add_subplot(grid[0, 0]), left)
    ax = fig.add_subplot(grid[0, 1])
    n = preference.shape[0]
    ax.imshow(preference, cmap="RdBu", vmin=0.0, vmax=1.0, interpolation="nearest")
    if last_pair is not None:
        a, b = last_pair
        ax.add_patch(_rectangle((b - 0.5, a - 0.5)))
    ax.set_title("P(row beats column)", fontsize=9)
    ticks = np.arange(n) if n <= 12 else np.linspace(0, n - 1, 6).round().astype(int)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=7)
    ax.set_ylabel(players[0], fontsize=8)
    ax.set_xlabel(players[1], fontsize=8)
    _bars(fig.add_subplot(grid[0, 2]), right)
    fig.suptitle(header, fontsize=9)
    return _to_array(fig, MATRIX_FRAME_SIZE)


def _rectangle(xy):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, 1.0, 1.0, fill=False, edgecolor=_LAST, linewidth=2.5)


def _vline(x: float):
    from matplotlib.lines import Line2D

    return Line2D([x, x], [0.02, 0.94], color="#bbbbbb", linewidth=1.0)


def _tail_lines(text: str, width: int, rows: int) -> str:
    """The last ``rows`` lines of ``text`` wrapped at ``width`` characters (an ellipsis if cut)."""
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(line, width, replace_whitespace=False, drop_whitespace=False) or [""])
    if len(lines) > rows:
        lines = ["..."] + lines[-(rows - 1):]
    return "\n".join(lines)


def text_frame(header: str, columns: Sequence[tuple[str, str]]) -> np.ndarray:
    """A ``TEXT_FRAME_SIZE + (3,)`` ``uint8`` picture of transcripts side by side.

    Parameters
    ----------
    header
        One line over the columns (task, turn, rewards).
    columns
        ``(title, transcript)`` pairs, one column each; long transcripts keep
        their last lines. Text is drawn literally (no ``$...$`` mathtext): replies
    are arbitrary strings.
    """
    fig = _figure(TEXT_FRAME_SIZE)
    fig.patch.set_facecolor("white")
    fig.text(0.01, 0.975, header, fontsize=9, va="top", family="monospace", weight="bold", parse_math=False)
    k = max(len(columns), 1)
    chars = int(TEXT_FRAME_SIZE[1] / k / 7.0)  # a monospace character is about 6.7 px wide at 8 pt
    for i, (title, transcript) in enumerate(columns):
        x = 0.01 + i / k
        if i:
            fig.add_artist(_vline(i / k - 0.005))
        fig.text(x, 0.925, title, fontsize=9, va="top", color=_LAST, weight="bold", parse_math=False)
        fig.text(x, 0.88, _tail_lines(transcript, chars - 2, 34), fontsize=8, va="top",
                 family="monospace", linespacing=1.15, parse_math=False)
    return _to_array(fig, TEXT_FRAME_SIZE)
