"""Gridworld Markov preference games.

:func:`random_gridworld` is 001's synthetic test bed (Sec. 4.1, Fig. 1a):
"10 random gridworlds with a number of states and actions drawn uniformly
from [1, 100] and [2, 10]". The paper gives nothing else, so every other
choice is ours, documented here and in :class:`GridLayout`:

- states are the cells of a near-square grid (row-major, width ``ceil(sqrt(S))``);
- each action ``a`` at cell ``s`` has a random intended move among the five
  moves {stay, up, down, left, right} (clipped at the border), taken with
  probability ``1 - slip``; with probability ``slip`` the agent moves to a
  uniformly random neighbouring cell (the five moves);
- one start cell, the grid's top-left corner (so a policy needs no start
  index; 001 footnote 4);
- a dense, stage-independent step preference
  ``r = 1/2 + (M - M^T)/2`` over flattened ``(s, a)`` with ``M ~ U[0, 1]``:
  antisymmetric and inside ``[0, 1]`` by construction (notes 001 Sec. 5);
- horizon ``H = 5`` by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefgym.games.markov import TabularMarkovGame
from prefgym.games.step_preference import FeatureStepPreference

__all__ = [
    "GridLayout",
    "MOVES",
    "random_gridworld",
    "grid_transitions",
    "cyclic_goals_gridworld",
    "intermediate_preference_gridworld",
    "GRIDWORLD_GENERATORS",
    "make_gridworld",
]

#: (d_row, d_col) of stay, up, down, left, right
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])


@dataclass(frozen=True)
class GridLayout:
    """Cells of a grid, numbered row-major; ``n_cells`` may leave the last row short."""

    n_cells: int
    width: int

    @classmethod
    def near_square(cls, n_cells: int) -> GridLayout:
        return cls(n_cells, int(np.ceil(np.sqrt(n_cells))))

    @property
    def height(self) -> int:
        return -(-self.n_cells // self.width)

    def coords(self, cell) -> tuple[np.ndarray, np.ndarray]:
        return np.divmod(np.asarray(cell), self.width)

    def neighbours(self) -> np.ndarray:
        """``(n_cells, 5)``: the cell each move of :data:`MOVES` leads to (border: stay)."""
        r, c = self.coords(np.arange(self.n_cells))
        nr, nc = r[:, None] + MOVES[:, 0], c[:, None] + MOVES[:, 1]
        target = nr * self.width + nc
        ok = (nr >= 0) & (nc >= 0) & (nc < self.width) & (target < self.n_cells)
        return np.where(ok, target, np.arange(self.n_cells)[:, None])


def grid_transitions(layout: GridLayout, moves: np.ndarray, slip: float) -> np.ndarray:
    """``f(s' | s, a)`` for actions that take move ``moves[s, a]`` w.p. ``1 - slip``.

    With probability ``slip`` the agent takes one of the five moves uniformly.
    """
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must lie in [0, 1]; got {slip}")
    nb = layout.neighbours()  # (S, 5)
    S, A = moves.shape
    f = np.zeros((S, A, S))
    s_idx = np.arange(S)[:, None]
    np.add.at(f, (s_idx, np.arange(A)[None, :], nb[s_idx, moves]), 1.0 - slip)
    for m in range(len(MOVES)):
        np.add.at(f, (s_idx, slice(None), nb[:, m][:, None]), slip / len(MOVES))
    return f


def random_gridworld(
    seed=None,
    n_states: int | None = None,
    n_actions: int | None = None,
    horizon: int = 5,
    slip: float = 0.1,
) -> TabularMarkovGame:
    """One random gridworld of 001 Sec. 4.1 (see the module docstring for our choices).

    ``n_states`` ~ U{1..100} and ``n_actions`` ~ U{2..10} unless given.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    S = int(rng.integers(1, 101)) if n_states is None else int(n_states)
    A = int(rng.integers(2, 11)) if n_actions is None else int(n_actions)
    if S < 1 or A < 1:
        raise ValueError(f"need at least one state and one action; got S={S}, A={A}")
    layout = GridLayout.near_square(S)
    moves = rng.integers(0, len(MOVES), size=(S, A))
    f = grid_transitions(layout, moves, slip)
    M = rng.random((S * A, S * A))
    r = (0.5 + 0.5 * (M - M.T)).reshape(S, A, S, A)
    nu = np.zeros(S)
    nu[0] = 1.0
    return TabularMarkovGame(f, r, nu, horizon, layout=layout)
