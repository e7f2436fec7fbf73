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

Hand-made, readable gridworlds for the issue's test beds (each with a
``layout`` and a ``cell_labels`` dict for renderers):

- :func:`cyclic_goals_gridworld`: an open grid with red / green / blue goal
  cells that beat each other cyclically (and any goal beats no goal), so the
  Nash equilibrium mixes over the goals;
- :func:`intermediate_preference_gridworld`: two routes to one end cell that
  only the intermediate (not the terminal) preferences tell apart.

:func:`make_gridworld` builds any of them by name (:data:`GRIDWORLD_GENERATORS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefgym.errors import InvalidArgumentError
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.step_preference import FeatureStepPreference
from prefgym.validation import check_int, check_probability, check_rng

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
    slip = check_probability(slip, "slip")
    nb = layout.neighbours()  # (S, 5)
    S, A = moves.shape
    f = np.zeros((S, A, S))
    s_idx = np.arange(S)[:, None]
    np.add.at(f, (s_idx, np.arange(A)[None, :], nb[s_idx, moves]), 1.0 - slip)
    for m in range(len(MOVES)):
        np.add.at(f, (s_idx, slice(None), nb[:, m][:, None]), slip / len(MOVES))
    return f


#: largest ``n_states * n_actions`` of :func:`random_gridworld` (its dense preference has
#: ``(S A)^2`` entries: 128 MiB at the limit)
MAX_DENSE_PAIRS = 4096


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
    rng = check_rng(seed)
    S = int(rng.integers(1, 101)) if n_states is None else check_int(n_states, "n_states", minimum=1)
    A = int(rng.integers(2, 11)) if n_actions is None else check_int(n_actions, "n_actions", minimum=1)
    if S * A > MAX_DENSE_PAIRS:
        raise InvalidArgumentError(
            f"n_states * n_actions = {S * A} is too big for a dense random step preference of "
            f"(S A)^2 entries; the limit is {MAX_DENSE_PAIRS} (state-action pairs)")
    horizon = check_int(horizon, "horizon", minimum=1)
    layout = GridLayout.near_square(S)
    moves = rng.integers(0, len(MOVES), size=(S, A))
    f = grid_transitions(layout, moves, slip)
    M = rng.random((S * A, S * A))
    r = (0.5 + 0.5 * (M - M.T)).reshape(S, A, S, A)
    nu = np.zeros(S)
    nu[0] = 1.0
    return TabularMarkovGame(f, r, nu, horizon, layout=layout)


# ------------------------------------------------------------------ hand-made gridworlds
# Readable games for the hand-made test beds. Each returns a TabularMarkovGame with
# ``layout`` set and an extra attribute ``cell_labels``: a dict ``{cell: one-letter label}``
# that renderers draw (the constructor of TabularMarkovGame is unchanged).

#: label colours for renderers: goal colours, good/bad cells, walls, start and end
LABEL_COLOURS = {
    "R": (230, 90, 90), "G": (90, 190, 90), "B": (90, 130, 230),
    "+": (190, 235, 190), "-": (240, 190, 190), "#": (70, 70, 70),
    "S": (250, 240, 170), "E": (240, 200, 90),
}


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InvalidArgumentError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _check_strength(name: str, value, high: float, positive: bool = False) -> float:
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or not (0.0 < value if positive else 0.0 <= value) or value > high:
        bound = "(0, " if positive else "[0, "
        raise InvalidArgumentError(f"{name} must lie in {bound}{high}] so that r stays in [0, 1]; "
                                   f"got {value!r}")
    return float(value)


def _check_cell(name: str, cell, width: int, height: int) -> tuple[int, int]:
    try:
        r, c = (int(x) for x in cell)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a (row, col) pair; got {cell!r}") from None
    if not (0 <= r < height and 0 <= c < width):
        raise InvalidArgumentError(f"{name} {(r, c)} lies outside the {height} x {width} grid")
    return r, c


def _state_features(index: np.ndarray, k: int, n_actions: int) -> np.ndarray:
    """One-hot features ``(S, A, k)`` of a per-state index, the same for every action."""
    return np.repeat(np.eye(k)[index][:, None, :], n_actions, axis=1)


def cyclic_goals_gridworld(
    width: int = 5,
    height: int = 5,
    horizon: int = 8,
    slip: float = 0.0,
    start: str | tuple[int, int] = "centre",
    goals: dict[str, tuple[int, int]] | None = None,
    cycle: float = 0.4,
    goal_bonus: float = 0.3,
) -> TabularMarkovGame:
    """An open grid with three goal colours that beat each other cyclically.

    Default 5 x 5 board (start ``S`` in the centre, goals equidistant from it)::

        . . R . .
        . . . . .
        G . S . B
        . . . . .
        . . . . .

    Five actions (stay, up, down, left, right; :data:`MOVES`), each taken with
    probability ``1 - slip`` (:func:`grid_transitions`). The step preference is
    a :class:`~prefgym.games.step_preference.FeatureStepPreference` over the
    one-hot features "standing on R / G / B / no goal", the same at every step:

    - red beats green, green beats blue, blue beats red: ``r = 1/2 + cycle``;
    - any goal beats no goal: ``r = 1/2 + goal_bonus``.

    Actions do not enter the preference, only where a player stands. Per step this
    is rock-paper-scissors among the goals, so no pure "go to one goal" policy is
    an equilibrium: the goal that beats it exploits it (exploitability
    ``> 0``). With ``slip = 0`` and the default (equidistant) goals, every
    policy that stands on each goal with probability 1/3 from the first step a
    goal can be reached on (``d`` moves away) is an exact Nash equilibrium
    (exploitability 0): before step ``d`` nobody can stand on a goal, and from
    then on every goal scores ``1/2`` per step against it and no cell more. From
    the centre: step up, left or right uniformly, then keep walking and stay.

    Parameters
    ----------
    width, height
        Grid size; at least 3 x 3 for the default placements.
    horizon
        Steps ``H``; must exceed the distance from the start to every goal.
    slip
        Probability of a uniformly random move instead of the chosen one.
    start
        ``"centre"``, ``"corner"`` (top-left) or a ``(row, col)`` cell.
    goals
        ``{"R": (row, col), "G": ..., "B": ...}``; by default three cells at the
        same Manhattan distance from the start (up, left and right of the centre,
        or on an anti-diagonal from the corner).
    cycle, goal_bonus
        Preference margins, in ``(0, 1/2]`` and ``[0, 1/2]``.

    Returns
    -------
    TabularMarkovGame
        With ``layout``, ``cell_labels`` (``"S"`` and the goal letters),
        ``goal_cells`` (``{"R": cell, ...}``) and ``start_cell``.
    """
    width, height = _check_int("width", width, 1), _check_int("height", height, 1)
    horizon = _check_int("horizon", horizon, 1)
    cycle = _check_strength("cycle", cycle, 0.5, positive=True)
    goal_bonus = _check_strength("goal_bonus", goal_bonus, 0.5)
    if goals is None and (width < 3 or height < 3):
        raise InvalidArgumentError("the default start and goals need a grid of at least 3 x 3; "
                                   f"got {height} x {width}")
    if isinstance(start, str):
        if start not in ("centre", "center", "corner"):
            raise InvalidArgumentError("start must be 'centre', 'corner' or a (row, col) cell; "
                                       f"got {start!r}")
        s_rc = (height // 2, width // 2) if start in ("centre", "center") else (0, 0)
    else:
        s_rc = _check_cell("start", start, width, height)
    if goals is None:
        r0, c0 = s_rc
        if start == "corner":
            d = min(width, height) - 1
            goals = {"R": (0, d), "G": (d, 0), "B": (d // 2, d - d // 2)}
        else:
            d = min(r0, c0, width - 1 - c0)
            if d < 1:
                raise InvalidArgumentError(f"start {s_rc} leaves no room for the default goals; pass goals=")
            goals = {"R": (r0 - d, c0), "G": (r0, c0 - d), "B": (r0, c0 + d)}
    if not isinstance(goals, dict) or set(goals) != {"R", "G", "B"}:
        raise InvalidArgumentError(f"goals must be a dict with keys 'R', 'G', 'B'; got {goals!r}")
    g_rc = {k: _check_cell(f"goal {k}", v, width, height) for k, v in goals.items()}
    if len(set(g_rc.values()) | {s_rc}) != 4:
        raise InvalidArgumentError(f"the start {s_rc} and the goals {g_rc} must be four different cells")
    far = max(abs(r - s_rc[0]) + abs(c - s_rc[1]) for r, c in g_rc.values())
    if horizon <= far:
        raise InvalidArgumentError(f"horizon {horizon} is too short: a goal lies {far} moves from the start; "
                         f"need horizon >= {far + 1}")

    layout = GridLayout(width * height, width)
    S, A = layout.n_cells, len(MOVES)
    f = grid_transitions(layout, np.tile(np.arange(A), (S, 1)), slip)
    start_cell = s_rc[0] * width + s_rc[1]
    colour = np.full(S, 3)  # 0 R, 1 G, 2 B, 3 no goal
    labels = {start_cell: "S"}
    for i, name in enumerate("RGB"):
        cell = g_rc[name][0] * width + g_rc[name][1]
        colour[cell] = i
        labels[cell] = name
    omega = np.zeros((4, 4))
    omega[[0, 1, 2], [1, 2, 0]] = cycle  # R > G > B > R
    omega[:3, 3] = goal_bonus  # any goal > no goal
    omega -= omega.T
    nu = np.zeros(S)
    nu[start_cell] = 1.0
    pref = FeatureStepPreference(_state_features(colour, 4, A), omega)
    game = TabularMarkovGame(f, pref, nu, horizon, layout=layout)
    game.cell_labels = labels
    game.goal_cells = {name: g_rc[name][0] * width + g_rc[name][1] for name in "RGB"}
    game.start_cell = start_cell
    return game


def intermediate_preference_gridworld(
    length: int = 5,
    horizon: int | None = None,
    slip: float = 0.0,
    terminal_only: bool = False,
    step_strength: float = 0.25,
    terminal_strength: float = 0.5,
) -> TabularMarkovGame:
    """Two routes to one end cell: only the intermediate preferences tell them apart.

    A ``3 x length`` grid (default ``length = 5``)::

        + + + + +      good route (row 0)
        S # # # E      start, walls, end
        - - - - -      bad route (row 2)

    From ``S`` a player reaches ``E`` over the good row or the bad row, in
    ``length + 1`` moves either way (walls ``#`` block moves; a blocked move
    stays). Actions: stay, up, down, left, right. With the cell score
    ``q = +1`` on ``+``, ``-1`` on ``-`` and ``0`` elsewhere, the preference is

    - at steps ``h < H``: ``r_h = 1/2 + step_strength (q(s) - q(s'))``: the player
      on the better cell is preferred (a transitive, Bradley-Terry-like step score);
    - at the last step ``H``: ``r_H = 1/2 + terminal_strength (e(s) - e(s'))`` with
      ``e = 1`` on ``E``: reaching the end is what counts, so both routes tie.

    With ``terminal_only=True`` the intermediate preferences are ``1/2``: the
    game only scores where the players end, and the two routes have equal
    value against every opponent. In the full game the best response takes
    the good route.

    Parameters
    ----------
    length
        Columns, at least 3 (one wall cell).
    horizon
        Steps ``H >= length + 2``, so a player can reach ``E`` by the last
        step; ``length + 2`` by default.
    slip
        Probability of a uniformly random move instead of the chosen one.
    terminal_only
        Score only the last step (see above).
    step_strength, terminal_strength
        Margins, in ``[0, 1/4]`` and ``[0, 1/2]``.

    Returns
    -------
    TabularMarkovGame
        With ``layout``, ``cell_labels`` (``+ - # S E``), ``start_cell`` and ``end_cell``.
    """
    length = _check_int("length", length, 3)
    horizon = length + 2 if horizon is None else _check_int("horizon", horizon, 1)
    if horizon < length + 2:
        raise InvalidArgumentError(f"horizon {horizon} is too short: the end cell is {length + 1} moves "
                                   f"from the start; need horizon >= {length + 2}")
    step_strength = _check_strength("step_strength", step_strength, 0.25)
    terminal_strength = _check_strength("terminal_strength", terminal_strength, 0.5)
    if not isinstance(terminal_only, bool | np.bool_):
        raise InvalidArgumentError(f"terminal_only must be a bool; got {terminal_only!r}")

    layout = GridLayout(3 * length, length)
    S, A = layout.n_cells, len(MOVES)
    start, end = length, 2 * length - 1
    walls = np.arange(length + 1, 2 * length - 1)
    f = grid_transitions(layout, np.tile(np.arange(A), (S, 1)), slip)
    blocked = f[:, :, walls].sum(axis=-1)  # moves into a wall stay put
    f[:, :, walls] = 0.0
    f[np.arange(S), :, np.arange(S)] += blocked
    q = np.zeros(S)
    q[:length], q[2 * length:] = 1.0, -1.0
    e = np.zeros(S)
    e[end] = 1.0
    phi = np.repeat(np.stack([q, e, np.ones(S)], axis=-1)[:, None, :], A, axis=1)  # (S, A, 3)
    omega = np.zeros((horizon, 3, 3))
    if not terminal_only:
        omega[:-1, 0, 2], omega[:-1, 2, 0] = step_strength, -step_strength
    omega[-1, 1, 2], omega[-1, 2, 1] = terminal_strength, -terminal_strength
    nu = np.zeros(S)
    nu[start] = 1.0
    game = TabularMarkovGame(f, FeatureStepPreference(phi, omega), nu, horizon, layout=layout)
    labels = {int(c): "+" for c in range(length)} | {int(c): "-" for c in range(2 * length, S)}
    game.cell_labels = labels | {int(w): "#" for w in walls} | {start: "S", end: "E"}
    game.start_cell, game.end_cell = start, end
    return game


#: name -> generator of a gridworld :class:`TabularMarkovGame`
GRIDWORLD_GENERATORS = {
    "cyclic_goals": cyclic_goals_gridworld,
    "intermediate": intermediate_preference_gridworld,
    "random": random_gridworld,
}


def make_gridworld(name: str, **kwargs) -> TabularMarkovGame:
    """Build the gridworld of :data:`GRIDWORLD_GENERATORS` called ``name`` (``"..._gridworld"`` too)."""
    key = name.removesuffix("_gridworld") if isinstance(name, str) else name
    key = "intermediate" if key == "intermediate_preference" else key
    if not isinstance(key, str) or key not in GRIDWORLD_GENERATORS:
        raise InvalidArgumentError(f"unknown gridworld generator {name!r}; "
                                   f"choose from {sorted(GRIDWORLD_GENERATORS)}")
    return GRIDWORLD_GENERATORS[key](**kwargs)
