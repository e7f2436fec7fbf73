"""Gymnasium and PettingZoo faces of a :class:`~prefgym.games.MatrixGame`.

- :class:`MatrixGameEnv`: single-agent Gymnasium env. The agent is player 0
  against a settable opponent mixture; its reward is the preference
  ``P(a beats b)``, so any Gymnasium / SB3 algorithm trains on it unchanged.
- :class:`MatrixGameParallelEnv`: PettingZoo parallel env for self-play by
  ``"player_0"`` and ``"player_1"``; rewards ``P(a0 > a1)`` and its complement.

Both envs repeat the game for ``rounds`` rounds and then *terminate*: the
game is over, so learners do not bootstrap past its end. Each player observes
the other's previous action, ``n`` at the start of an episode. With
``reward_mode="expected"`` the reward is the exact win probability; with
``"sample"`` it is one Bernoulli draw of the outcome, as a human rater gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo.utils import parallel_to_aec

from prefgym.envs.rendering import BarPanel, matrix_frame
from prefgym.envs.two_player import TwoPlayerParallelEnv
from prefgym.errors import InvalidActionError, InvalidPolicyError
from prefgym.games.matrix import MatrixGame, make_game
from prefgym.simplex import check_policy
from prefgym.validation import (
    STEP_AFTER_END,
    STEP_BEFORE_RESET,
    check_discrete_action,
    check_parallel_actions,
    check_real_array,
    check_seed,
)

__all__ = ["MatrixGameEnv", "MatrixGameParallelEnv", "parallel_env", "aec_env", "REWARD_MODES",
           "RENDER_MODES"]

REWARD_MODES = ("expected", "sample")
RENDER_MODES = ["ansi", "rgb_array"]
OpponentPolicy = np.ndarray | Callable[[np.random.Generator], Any]


def game_from_kwargs(
    game: MatrixGame | None = None,
    matrix=None,
    generator: str | None = None,
    generator_kwargs: dict | None = None,
) -> MatrixGame:
    """Build the single game given by exactly one of the three sources (RPS if none)."""
    sources = {"game": game, "matrix": matrix, "generator": generator}
    given = [k for k, v in sources.items() if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of game, matrix, generator; got {given}")
    if generator_kwargs and generator is None:
        raise ValueError("generator_kwargs needs a generator name")
    if game is None:
        if matrix is not None:
            game = MatrixGame(matrix)
        else:
            game = make_game(generator or "rps", **(generator_kwargs or {}))
    if not isinstance(game, MatrixGame):
        raise TypeError(f"game must be a MatrixGame; got {type(game).__name__}")
    if game.batch_shape:
        raise ValueError(f"an env plays one game; got a batch of shape {game.batch_shape}")
    return game


def check_action(action, n: int, name: str = "action") -> int:
    """Return ``action`` as an ``int`` in ``[0, n)``; raise InvalidActionError otherwise."""
    return check_discrete_action(action, n, name)


def check_opponent(policy, n: int) -> np.ndarray:
    """Validate an opponent mixture: length ``n``, non-negative, summing to 1."""
    p = check_real_array(policy, "opponent policy", InvalidPolicyError)
    if p.ndim != 1:
        raise InvalidPolicyError(f"opponent policy must be a 1-D probability vector of length {n}; "
                                 f"got shape {p.shape}")
    return check_policy(p, n, name="opponent policy")


def _check_common(reward_mode: str, rounds: int, render_mode: str | None, modes) -> None:
    if reward_mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}; got {reward_mode!r}")
    if isinstance(rounds, bool) or int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1; got {rounds!r}")
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode must be None or one of {modes}; got {render_mode!r}")


class MatrixGameEnv(gymnasium.Env):
    """Player 0 of a preference game against a fixed (settable) opponent.

    Parameters
    ----------
    game, matrix, generator, generator_kwargs
        The game: a :class:`MatrixGame`, a preference matrix, or a generator
        name of :data:`~prefgym.games.GENERATORS` with its kwargs. At most one
        source; rock-paper-scissors if none.
    opponent
        The opponent's mixed strategy (length ``n``; uniform by default), or a
        callable ``policy(rng) -> probability vector`` queried every step.
    reward_mode
        ``"expected"``: reward ``P(a > opponent) = sum_b opp[b] P[a, b]``;
        ``"sample"``: one Bernoulli draw of ``a`` beating a sampled ``b``.
    rounds
        Episode length; the episode terminates after ``rounds`` steps.
    render_mode
        ``None``, ``"ansi"`` (a one-line text of the last round) or
        ``"rgb_array"`` (bar charts of the agent's action frequencies this
        episode and of the opponent's mixture beside the heat map of ``P``,
        the last actions highlighted).

    Notes
    -----
    Observation ``Discrete(n + 1)``: the opponent's previous action, ``n`` at
    the start. Action ``Discrete(n)``. ``info`` has ``opponent_action`` (the
    sampled ``b``, drawn in both modes) and ``win_prob`` ``= P(a > opponent
    mixture)``, the expected reward of the action played.
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 4}

    def __init__(
        self,
        game: MatrixGame | None = None,
        matrix=None,
        generator: str | None = None,
        generator_kwargs: dict | None = None,
        opponent: OpponentPolicy | None = None,
        reward_mode: str = "expected",
        rounds: int = 1,
        render_mode: str | None = None,
    ):
        _check_common(reward_mode, rounds, render_mode, self.metadata["render_modes"])
        self.game = game_from_kwargs(game, matrix, generator, generator_kwargs)
        self.n_actions = n = self.game.n_actions
        self.reward_mode, self.rounds, self.render_mode = reward_mode, int(rounds), render_mode
        self.observation_space = spaces.Discrete(n + 1)
        self.action_space = spaces.Discrete(n)
        self._P = self.game.preference
        self.set_opponent(np.full(n, 1.0 / n) if opponent is None else opponent)
        self._t: int | None = None
        self._last: tuple[int, int, float, float] | None = None
        self._counts = np.zeros(n, dtype=np.int64)  # the agent's actions this episode (for rendering)
        self._last_mixture: np.ndarray | None = None  # a callable opponent's last mixture

    @property
    def horizon(self) -> int:
        """The most steps an episode lasts (``rounds``): the spec's ``max_episode_steps``."""
        return self.rounds

    @property
    def opponent(self) -> OpponentPolicy:
        """The opponent's mixture (a copy) or its callable policy."""
        return self._opponent if callable(self._opponent) else self._opponent.copy()

    def set_opponent(self, policy: OpponentPolicy) -> None:
        """Replace the opponent, effective from the next step.

        Raises
        ------
        ValueError
            If a vector is not a probability vector over the ``n`` actions.
        """
        self._opponent = policy if callable(policy) else check_opponent(policy, self.n_actions)

    def _opponent_mixture(self) -> np.ndarray:
        if callable(self._opponent):
            return check_opponent(self._opponent(self.np_random), self.n_actions)
        return self._opponent

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; the first observation is ``n`` (no previous action)."""
        super().reset(seed=check_seed(seed))
        self._t, self._last = 0, None
        self._counts[:] = 0
        return np.int64(self.n_actions), {}

    def step(self, action):
        """Play ``action`` against an opponent draw ``b``; observe ``b``."""
        if self._t is None:
            raise InvalidActionError(STEP_BEFORE_RESET)
        if self._t >= self.rounds:
            raise InvalidActionError(STEP_AFTER_END)
        a = check_action(action, self.n_actions)
        opp = self._opponent_mixture()
        win_prob = float((self._P @ opp)[a])
        b = int(self.np_random.choice(self.n_actions, p=opp))
        if self.reward_mode == "expected":
            reward = win_prob
        else:
            reward = float(self.np_random.random() < self._P[a, b])
        self._t += 1
        self._last = (a, b, reward, win_prob)
        self._counts[a] += 1
        self._last_mixture = opp
        info = {"opponent_action": b, "win_prob": win_prob}
        return np.int64(b), reward, self._t >= self.rounds, False, info

    def render(self) -> str | np.ndarray | None:
        """A one-line text (``"ansi"``) or a picture (``"rgb_array"``) of the last round."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass 'ansi' or 'rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        if self._last is None:
            return f"round {self._t or 0}/{self.rounds}: no moves yet\n"
        a, b, reward, win_prob = self._last
        return (f"round {self._t}/{self.rounds}: agent plays {a}, opponent plays {b}; "
                f"P(win)={win_prob:.3f} reward={reward:.3f}\n")

    def _render_rgb(self) -> np.ndarray:
        t = self._t or 0
        freq = self._counts / max(t, 1)
        mixture = self._last_mixture if callable(self._opponent) else self._opponent
        if mixture is None:  # a callable opponent before its first draw
            mixture = np.zeros(self.n_actions)
        a = b = None
        header = f"round {t}/{self.rounds}: no moves yet"
        if self._last is not None:
            a, b, reward, win_prob = self._last
            header = (f"round {t}/{self.rounds}: agent plays {a}, opponent plays {b}; "
                      f"P(win) = {win_prob:.3f}, reward = {reward:.3f}")
        return matrix_frame(
            self._P, BarPanel("agent: action frequency this episode", freq, a),
            BarPanel("opponent: mixed strategy", np.asarray(mixture), b),
            None if a is None else (a, b), header, players=("agent", "opponent"))


class MatrixGameParallelEnv(TwoPlayerParallelEnv):
    """Two-player self-play version of a preference game (PettingZoo parallel API).

    ``"player_0"`` and ``"player_1"`` act simultaneously; ``player_0`` earns
    ``P(a0 > a1)`` (``"expected"``: exactly ``P[a0, a1]``; ``"sample"``: a
    Bernoulli draw) and ``player_1`` earns ``1 -`` that. Each player observes
    the other's previous action (``n`` at the start). Parameters are those of
    :class:`MatrixGameEnv` less ``opponent``. ``infos[agent]`` holds
    ``opponent_action`` and ``win_prob`` ``= P(own action > other action)``.
    """

    metadata = {"name": "prefgym_matrix_v0", "render_modes": RENDER_MODES, "render_fps": 4,
                "is_parallelizable": True}

    def __init__(
        self,
        game: MatrixGame | None = None,
        matrix=None,
        generator: str | None = None,
        generator_kwargs: dict | None = None,
        reward_mode: str = "expected",
        rounds: int = 1,
        render_mode: str | None = None,
    ):
        _check_common(reward_mode, rounds, render_mode, self.metadata["render_modes"])
        self.game = game_from_kwargs(game, matrix, generator, generator_kwargs)
        self.n_actions = n = self.game.n_actions
        self.reward_mode, self.rounds, self.render_mode = reward_mode, int(rounds), render_mode
        self._init_players(spaces.Discrete(n + 1), spaces.Discrete(n))
        self._P = self.game.preference
        self._t = 0
        self._last: tuple[int, int, float, float] | None = None
        self._counts = np.zeros((2, n), dtype=np.int64)  # both players' actions this episode

    @property
    def horizon(self) -> int:
        """The most rounds an episode lasts (``rounds``)."""
        return self.rounds

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; both players observe ``n``."""
        self._reseed(seed)
        self.agents = self.possible_agents[:]
        self._t, self._last = 0, None
        self._counts[:] = 0
        obs = {a: np.int64(self.n_actions) for a in self.agents}
        return obs, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        """Play one simultaneous round; agents leave after ``rounds`` rounds."""
        check_parallel_actions(actions, self.agents)
        a0 = check_action(actions["player_0"], self.n_actions, "player_0 action")
        a1 = check_action(actions["player_1"], self.n_actions, "player_1 action")
        p = float(self._P[a0, a1])
        r0 = p if self.reward_mode == "expected" else float(self.np_random.random() < p)
        self._t += 1
        self._last = (a0, a1, p, r0)
        self._counts[0, a0] += 1
        self._counts[1, a1] += 1
        done = self._t >= self.rounds
        obs = {"player_0": np.int64(a1), "player_1": np.int64(a0)}
        rewards = {"player_0": r0, "player_1": 1.0 - r0}
        terminations = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        infos = {
            "player_0": {"opponent_action": a1, "win_prob": p},
            "player_1": {"opponent_action": a0, "win_prob": 1.0 - p},
        }
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> str | np.ndarray | None:
        """A one-line text (``"ansi"``) or a picture (``"rgb_array"``) of the last round.

        The picture shows both players' action frequencies this episode beside
        the heat map of ``P``, the last actions highlighted.
        """
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass 'ansi' or 'rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            freq = self._counts / max(self._t, 1)
            a0 = a1 = None
            header = f"round {self._t}/{self.rounds}: no moves yet"
            if self._last is not None:
                a0, a1, p, r0 = self._last
                header = (f"round {self._t}/{self.rounds}: player_0 plays {a0}, player_1 plays {a1}; "
                          f"P(player_0 wins) = {p:.3f}, rewards = ({r0:.3f}, {1.0 - r0:.3f})")
            return matrix_frame(self._P, BarPanel("player_0: action frequency", freq[0], a0),
                                BarPanel("player_1: action frequency", freq[1], a1),
                                None if a0 is None else (a0, a1), header)
        if self._last is None:
            return f"round {self._t}/{self.rounds}: no moves yet\n"
        a0, a1, p, r0 = self._last
        return (f"round {self._t}/{self.rounds}: player_0 plays {a0}, player_1 plays {a1}; "
                f"P(player_0 wins)={p:.3f} rewards=({r0:.3f}, {1.0 - r0:.3f})\n")

    def close(self) -> None:
        pass


def parallel_env(**kwargs) -> MatrixGameParallelEnv:
    """PettingZoo parallel env; kwargs as :class:`MatrixGameParallelEnv`."""
    return MatrixGameParallelEnv(**kwargs)


def aec_env(**kwargs):
    """PettingZoo AEC env (``parallel_to_aec`` of :func:`parallel_env`)."""
    return parallel_to_aec(parallel_env(**kwargs))
