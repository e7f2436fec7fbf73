"""Gymnasium and PettingZoo faces of a :class:`~prefgym.games.markov.TabularMarkovGame`.

The Markov preference game of 001 (Sec. 2): both players start from one shared
state ``s_1 ~ nu_1`` and then move in their *own* copies of the MDP; at every
step ``h`` the pair is scored by ``r_h(s, a, s', a') = P([s, a] > [s', a'])``.
A player observes only its own state (001 Remark 1).

- :class:`GridworldParallelEnv`: PettingZoo parallel env, ``"player_0"`` and
  ``"player_1"``; player 0 earns ``r_h``, player 1 ``1 - r_h``.
- :class:`GridworldEnv`: single-agent Gymnasium env, player 0 against a fixed
  or scheduled opponent policy ``(K, H, S, A)``, so SB3 trains on it unchanged.

Both envs accept any ``TabularMarkovGame`` (``game=``) or a generator name of
:data:`~prefgym.games.gridworld.GRIDWORLD_GENERATORS`, terminate after the
game's ``H`` steps, and observe ``Discrete(S)``: the player's own state. The
policies of prefgym are non-stationary and may depend on the start: every
``info`` carries the step index ``h`` of the returned observation (the step of
the next action) and ``start``, the index ``k`` of the start into
``game.initial_states``; a user who wants ``h`` in the observation can wrap.
``info`` also reports the other player's state and action, for diagnostics
only: 001's policies must not condition on them.

``reward_mode="expected"`` pays the realised step preference ``r_h`` of the
two state-action pairs; ``"sample"`` pays one Bernoulli draw of it, as a
human rater gives. Either way the expected episode return of player 0 is
``game.value(pi, pi')``.

Rendering: ``"ansi"`` draws the grid as text (``0`` / ``1`` the players, ``*``
both, letters the game's ``cell_labels``); ``"rgb_array"`` draws an
``(rows * 24, cols * 24, 3)`` ``uint8`` picture with both players' paths so
far. Games without a ``layout`` are drawn on ``GridLayout.near_square(S)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo.utils import parallel_to_aec

from prefgym.envs.matrix import REWARD_MODES, check_action
from prefgym.envs.two_player import TwoPlayerParallelEnv
from prefgym.errors import InvalidActionError
from prefgym.games.gridworld import LABEL_COLOURS, GridLayout, make_gridworld
from prefgym.games.markov import TabularMarkovGame
from prefgym.validation import STEP_AFTER_END, STEP_BEFORE_RESET, check_parallel_actions, check_seed

__all__ = [
    "GridworldEnv",
    "GridworldParallelEnv",
    "gridworld_game",
    "parallel_env",
    "aec_env",
    "render_ansi",
    "render_rgb",
]

RENDER_MODES = ["ansi", "rgb_array"]
CELL_PX = 24
PLAYER_COLOURS = ((230, 110, 0), (120, 40, 200))  # player 0 orange, player 1 purple
OpponentSchedule = Callable[[int], Any]


# ------------------------------------------------------------------ game and checks
def gridworld_game(
    game: TabularMarkovGame | None = None,
    generator: str | None = None,
    generator_kwargs: dict | None = None,
    default_generator: str = "cyclic_goals",
    default_generator_kwargs: dict | None = None,
) -> TabularMarkovGame:
    """The game of an env: ``game``, else ``generator``, else ``default_generator``.

    ``generator_kwargs`` go to ``generator`` or, without one, to the default
    generator (replacing ``default_generator_kwargs``). The ``default_*``
    arguments are what a registered id fixes, so ``gymnasium.make(id, game=g)``
    works for every id.

    Raises
    ------
    ValueError
        For ``game`` together with a generator, an unknown generator name, or a
        game whose ``layout`` or ``cell_labels`` do not fit its states.
    TypeError
        If ``game`` is not a :class:`TabularMarkovGame`.
    """
    if game is not None:
        if generator is not None or generator_kwargs:
            raise ValueError("give either game or generator (with generator_kwargs), not both")
        if not isinstance(game, TabularMarkovGame):
            raise TypeError(f"game must be a TabularMarkovGame; got {type(game).__name__}")
    elif generator is not None:
        game = make_gridworld(generator, **(generator_kwargs or {}))
    else:
        kwargs = default_generator_kwargs if generator_kwargs is None else generator_kwargs
        game = make_gridworld(default_generator, **(kwargs or {}))
    _layout_and_labels(game)  # validates
    return game


def _layout_and_labels(game: TabularMarkovGame) -> tuple[GridLayout, dict[int, str]]:
    S = game.n_states
    layout = getattr(game, "layout", None)
    if layout is None:
        layout = GridLayout.near_square(S)
    elif not isinstance(layout, GridLayout) or layout.n_cells != S or layout.width < 1:
        raise ValueError(f"game.layout must be a GridLayout with n_cells = n_states = {S}; got {layout!r}")
    labels = getattr(game, "cell_labels", None) or {}
    if not isinstance(labels, Mapping):
        raise ValueError(f"game.cell_labels must be a dict {{cell: label}}; got {type(labels).__name__}")
    for cell, label in labels.items():
        if isinstance(cell, bool) or not isinstance(cell, int | np.integer) or not 0 <= cell < S:
            raise ValueError(f"game.cell_labels has key {cell!r}; keys must be states in [0, {S})")
        if not isinstance(label, str) or not label:
            raise ValueError(f"game.cell_labels[{cell}] = {label!r}; labels must be non-empty strings")
    return layout, {int(c): v for c, v in labels.items()}


def _check_common(reward_mode: str, render_mode: str | None) -> None:
    if reward_mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}; got {reward_mode!r}")
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be None or one of {RENDER_MODES}; got {render_mode!r}")


def _draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """One categorical draw from the probability vector ``p`` (inverse CDF)."""
    return min(int(np.searchsorted(p.cumsum(), rng.random(), side="right")), p.size - 1)


# ------------------------------------------------------------------ rendering
def render_ansi(
    layout: GridLayout, labels: Mapping[int, str], positions: tuple[int, int] | None, header: str
) -> str:
    """The grid as text: ``0`` / ``1`` the players, ``*`` both, label letters, ``.`` plain cells."""
    chars = np.full(layout.height * layout.width, ".", dtype="<U1")
    chars[layout.n_cells:] = " "
    for cell, label in labels.items():
        chars[cell] = label[0]
    if positions is not None:
        p0, p1 = positions
        chars[p0], chars[p1] = "0", "1"
        if p0 == p1:
            chars[p0] = "*"
    rows = chars.reshape(layout.height, layout.width)
    border = "+" + "-" * (2 * layout.width + 1) + "+"
    body = ["| " + " ".join(row) + " |" for row in rows]
    legend = "0 = player_0, 1 = player_1, * = both"
    return "\n".join([header, border, *body, border, legend]) + "\n"


def render_rgb(
    layout: GridLayout, labels: Mapping[int, str], paths: tuple[list[int], list[int]], cell_px: int = CELL_PX
) -> np.ndarray:
    """An ``(rows * cell_px, cols * cell_px, 3)`` ``uint8`` picture of the grid and both players' paths.

    Cells are coloured by label (:data:`~prefgym.games.gridworld.LABEL_COLOURS`,
    grey for unknown labels, black past the last cell); each path is a polyline
    through the cell centres, player 0 slightly up-left of centre and player 1
    down-right so that shared moves stay visible, ending in a square at the
    player's current cell.
    """
    h, w = layout.height, layout.width
    cells = np.full((h * w, 3), 245, dtype=np.uint8)
    cells[layout.n_cells:] = 0
    for cell, label in labels.items():
        cells[cell] = LABEL_COLOURS.get(label, (160, 160, 160))
    img = np.repeat(np.repeat(cells.reshape(h, w, 3), cell_px, axis=0), cell_px, axis=1)
    img[::cell_px], img[:, ::cell_px] = 200, 200  # grid lines
    img[-1], img[:, -1] = 200, 200
    shift = max(cell_px // 8, 1)
    for path, colour, offset in zip(paths, PLAYER_COLOURS, (-shift, shift), strict=True):
        if not path:
            continue
        r, c = layout.coords(np.asarray(path))
        centres = np.stack([r, c], axis=-1) * cell_px + cell_px // 2 + offset  # (T, 2) pixels
        pts = centres[-1:]
        if len(path) > 1:
            n = int(np.abs(np.diff(centres, axis=0)).max()) + 1
            t = np.linspace(0.0, 1.0, n)[None, :, None]
            seg = centres[:-1, None, :] + t * (centres[1:] - centres[:-1])[:, None, :]
            pts = np.rint(seg.reshape(-1, 2)).astype(np.int64)
        _stamp(img, pts, 1, colour)  # 3-pixel line
        _stamp(img, centres[-1:], max(cell_px // 6, 1), colour)  # current cell
    return img


def _stamp(img: np.ndarray, pts: np.ndarray, radius: int, colour) -> None:
    """Paint a ``(2 radius + 1)``-pixel square around every point ``(row, col)``."""
    d = np.arange(-radius, radius + 1)
    rows = (pts[:, 0, None, None] + d[:, None]).ravel()
    cols = (pts[:, 1, None, None] + d[None, :]).ravel()
    ok = (rows >= 0) & (rows < img.shape[0]) & (cols >= 0) & (cols < img.shape[1])
    img[rows[ok], cols[ok]] = colour


class _Board:
    """The state both envs share: the game, its rendering data, and one episode's trajectories."""

    def __init__(self, game: TabularMarkovGame):
        self.game = game
        self.layout, self.labels = _layout_and_labels(game)
        self.H, self.S, self.A = game.horizon, game.n_states, game.n_actions
        self.h: int | None = None
        self.k = 0
        self.states = [0, 0]
        self.paths: tuple[list[int], list[int]] = ([], [])
        self.last: tuple[int, int, float, float] | None = None  # a0, a1, r_h, reward paid

    def reset(self, rng: np.random.Generator) -> None:
        g = self.game
        self.k = _draw(g.initial_weights, rng)
        s = int(g.initial_states[self.k])
        self.h, self.states, self.paths, self.last = 0, [s, s], ([s], [s]), None

    def step(self, a0: int, a1: int, sample: bool, rng: np.random.Generator) -> tuple[float, float, bool]:
        """Score the step, move both players (not after the last step); return ``r_h``, reward, done."""
        h, (s0, s1) = self.h, self.states
        p = float(self.game.preference.prob(h, s0, a0, s1, a1))
        reward = float(rng.random() < p) if sample else p
        if h + 1 < self.H:
            f = self.game.step_transitions(h)
            self.states = [_draw(f[s0, a0], rng), _draw(f[s1, a1], rng)]
            self.paths[0].append(self.states[0])
            self.paths[1].append(self.states[1])
        self.h = h + 1
        self.last = (a0, a1, p, reward)
        return p, reward, self.h >= self.H

    def render(self, mode: str | None, names: tuple[str, str]) -> str | np.ndarray | None:
        if mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass 'ansi' or 'rgb_array'")
            return None
        if mode == "rgb_array":
            return render_rgb(self.layout, self.labels, self.paths)
        if self.h is None:
            return render_ansi(self.layout, self.labels, None, "not started: call reset()")
        header = f"step {self.h}/{self.H}: {names[0]} at {self.states[0]}, {names[1]} at {self.states[1]}"
        if self.last is not None:
            a0, a1, p, reward = self.last
            header += f"; last actions ({a0}, {a1}), r={p:.3f}, reward={reward:.3f}"
        return render_ansi(self.layout, self.labels, (self.states[0], self.states[1]), header)


# ------------------------------------------------------------------ PettingZoo
class GridworldParallelEnv(TwoPlayerParallelEnv):
    """Both players of a Markov preference game, each in its own copy (PettingZoo parallel API).

    Parameters
    ----------
    game
        Any :class:`TabularMarkovGame`. At most one of ``game`` and ``generator``.
    generator, generator_kwargs
        A name of :data:`~prefgym.games.gridworld.GRIDWORLD_GENERATORS` and its kwargs.
    reward_mode
        ``"expected"`` (``r_h``) or ``"sample"`` (a Bernoulli draw of ``r_h``).
    render_mode
        ``None``, ``"ansi"`` or ``"rgb_array"``.
    default_generator, default_generator_kwargs
        Used when neither ``game`` nor ``generator`` is given (set by the registered ids).

    Notes
    -----
    ``rewards["player_0"]`` is ``r_h(s, a, s', a')``, ``rewards["player_1"]`` its
    complement. ``infos[agent]``: ``h``, ``start``, and after a step ``win_prob``
    (the agent's own ``r_h``), ``opponent_state``, ``opponent_action``.
    """

    metadata = {"name": "prefgym_gridworld_v0", "render_modes": RENDER_MODES, "render_fps": 4,
                "is_parallelizable": True}

    def __init__(
        self,
        game: TabularMarkovGame | None = None,
        generator: str | None = None,
        generator_kwargs: dict | None = None,
        reward_mode: str = "expected",
        render_mode: str | None = None,
        default_generator: str = "cyclic_goals",
        default_generator_kwargs: dict | None = None,
    ):
        _check_common(reward_mode, render_mode)
        self.game = gridworld_game(game, generator, generator_kwargs, default_generator,
                                   default_generator_kwargs)
        self.reward_mode, self.render_mode = reward_mode, render_mode
        self._board = _Board(self.game)
        S, A = self.game.n_states, self.game.n_actions
        self._init_players(spaces.Discrete(S), spaces.Discrete(A))

    @property
    def horizon(self) -> int:
        """The game's ``H``: every episode lasts exactly ``H`` steps."""
        return self.game.horizon

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Both players start in one state drawn from ``nu_1``."""
        self._reseed(seed)
        self.agents = self.possible_agents[:]
        b = self._board
        b.reset(self.np_random)
        obs = {a: np.int64(s) for a, s in zip(self.agents, b.states, strict=True)}
        return obs, {a: {"h": 0, "start": b.k} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        """Score ``r_h`` of both state-action pairs, then move both players; done after ``H`` steps."""
        check_parallel_actions(actions, self.agents)
        b = self._board
        a0 = check_action(actions["player_0"], b.A, "player_0 action")
        a1 = check_action(actions["player_1"], b.A, "player_1 action")
        p, r0, done = b.step(a0, a1, self.reward_mode == "sample", self.np_random)
        s0, s1 = b.states
        obs = {"player_0": np.int64(s0), "player_1": np.int64(s1)}
        rewards = {"player_0": r0, "player_1": 1.0 - r0}
        infos = {
            "player_0": {"h": b.h, "start": b.k, "win_prob": p, "opponent_state": s1, "opponent_action": a1},
            "player_1": {"h": b.h, "start": b.k, "win_prob": 1.0 - p, "opponent_state": s0,
                         "opponent_action": a0},
        }
        terminations = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> str | np.ndarray | None:
        """Text of the grid (``"ansi"``) or a picture of both paths (``"rgb_array"``)."""
        return self._board.render(self.render_mode, ("player_0", "player_1"))

    def close(self) -> None:
        pass


def parallel_env(**kwargs) -> GridworldParallelEnv:
    """PettingZoo parallel env; kwargs as :class:`GridworldParallelEnv`."""
    return GridworldParallelEnv(**kwargs)


def aec_env(**kwargs):
    """PettingZoo AEC env (``parallel_to_aec`` of :func:`parallel_env`)."""
    return parallel_to_aec(parallel_env(**kwargs))


# ------------------------------------------------------------------ Gymnasium
class GridworldEnv(gymnasium.Env):
    """Player 0 of a Markov preference game against a fixed or scheduled opponent.

    Parameters
    ----------
    game, generator, generator_kwargs, reward_mode, render_mode, default_generator, default_generator_kwargs
        As for :class:`GridworldParallelEnv`.
    opponent
        The opponent's policy, ``(K, H, S, A)`` or ``(H, S, A)`` (checked by
        ``game.check_policy``; uniform by default), or a schedule
        ``schedule(episode_index) -> policy`` asked at every reset (episodes
        count from 0).

    Notes
    -----
    Observation ``Discrete(S)``: the agent's own state; action ``Discrete(A)``.
    The opponent moves in its own copy of the MDP from the shared start,
    drawing its actions from its policy at its own state. Reward
    ``r_h(s, a, s', a')`` of the realised pairs (or a Bernoulli draw of it).
    ``info``: ``h`` (the step of the next action), ``start``, and after a step
    ``win_prob`` (``r_h``), ``opponent_state`` (its new state) and
    ``opponent_action`` (the action it just took).
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 4}

    def __init__(
        self,
        game: TabularMarkovGame | None = None,
        generator: str | None = None,
        generator_kwargs: dict | None = None,
        opponent: np.ndarray | OpponentSchedule | None = None,
        reward_mode: str = "expected",
        render_mode: str | None = None,
        default_generator: str = "cyclic_goals",
        default_generator_kwargs: dict | None = None,
    ):
        _check_common(reward_mode, render_mode)
        self.game = gridworld_game(game, generator, generator_kwargs, default_generator,
                                   default_generator_kwargs)
        self.reward_mode, self.render_mode = reward_mode, render_mode
        self._board = _Board(self.game)
        self.observation_space = spaces.Discrete(self.game.n_states)
        self.action_space = spaces.Discrete(self.game.n_actions)
        self.episode_index = -1  # incremented by every reset
        self._policy: np.ndarray | None = None
        self.set_opponent(self.game.uniform_policy() if opponent is None else opponent)

    @property
    def horizon(self) -> int:
        """The game's ``H``: every episode lasts exactly ``H`` steps (the spec's ``max_episode_steps``)."""
        return self.game.horizon

    @property
    def opponent(self) -> np.ndarray | OpponentSchedule:
        """The opponent's policy ``(K, H, S, A)`` (a copy) or its schedule."""
        return self._opponent if callable(self._opponent) else self._opponent.copy()

    @property
    def opponent_policy(self) -> np.ndarray | None:
        """The policy the opponent plays now (a schedule's answer for this episode); None before a reset."""
        return None if self._policy is None else self._policy.copy()

    def _check_opponent(self, policy) -> np.ndarray:
        shape, want = np.shape(policy), self.game.policy_shape
        if len(shape) > 4:
            raise ValueError(f"opponent policy must be one policy (H, S, A) or (K, H, S, A) = {want}; "
                             f"got a batch of shape {shape}")
        if shape not in (want, want[1:]):  # checked here: check_policy would fail inside broadcast_to
            raise ValueError(f"opponent policy must have shape (H, S, A) or (K, H, S, A) = {want}; "
                             f"got {shape}")
        return np.array(self.game.check_policy(policy, name="opponent policy"))

    def set_opponent(self, policy: np.ndarray | OpponentSchedule) -> None:
        """Replace the opponent: a policy takes effect from the next step, a schedule from the next reset.

        Raises
        ------
        ValueError
            If the policy does not have shape ``(H, S, A)`` / ``(K, H, S, A)`` or
            a row is not a probability vector.
        """
        if callable(policy):
            self._opponent = policy
        else:
            self._opponent = self._policy = self._check_opponent(policy)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode from ``s_1 ~ nu_1`` (shared by the opponent); observe ``s_1``."""
        super().reset(seed=check_seed(seed))
        self.episode_index += 1
        if callable(self._opponent):
            self._policy = self._check_opponent(self._opponent(self.episode_index))
        b = self._board
        b.reset(self.np_random)
        return np.int64(b.states[0]), {"h": 0, "start": b.k}

    def step(self, action):
        """Play ``action`` against the opponent's draw at its own state; observe the new own state."""
        b = self._board
        if b.h is None:
            raise InvalidActionError(STEP_BEFORE_RESET)
        if b.h >= b.H:
            raise InvalidActionError(STEP_AFTER_END)
        a = check_action(action, b.A)
        opp = _draw(self._policy[b.k, b.h, b.states[1]], self.np_random)
        p, reward, done = b.step(a, opp, self.reward_mode == "sample", self.np_random)
        info = {"h": b.h, "start": b.k, "win_prob": p, "opponent_state": b.states[1], "opponent_action": opp}
        return np.int64(b.states[0]), reward, done, False, info

    def render(self) -> str | np.ndarray | None:
        """Text of the grid (``"ansi"``) or a picture of both paths (``"rgb_array"``)."""
        return self._board.render(self.render_mode, ("agent", "opponent"))
