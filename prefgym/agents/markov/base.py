"""Self-play over a tabular Markov preference game (001), with exact or sampled Q.

A Markov agent keeps one softmax policy per start state, step and state:
logits ``(K, H, S, A)``, normalised per ``(k, h, s)``. An update computes a
Q array of that shape (an estimator of :mod:`prefgym.agents.markov.estimators`)
and applies a per-state rule of :mod:`prefgym.algorithms.rules` to all
``(k, h, s)`` at once, e.g. ``pi_h ~ pi_h exp(beta_h Q_h)`` is
:func:`~prefgym.algorithms.rules.mirror_step`. After each update the agent records
the exploitability (001 Sec. 4.1) of the last iterate and of the average
policy, whose occupancy is the mean of the iterates' occupancies (001 Thm 8
proof). The stage payoff ``r^t = E_{d^t} r - 1/2`` of the new iterate is computed
once and serves the exploitability, the running mean for the average policy
(the payoff is linear in ``d``) and the next update.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from prefgym.agents.base import BaseAgent, is_env
from prefgym.agents.markov.estimators import ESTIMATORS, exact_q, sampled_q
from prefgym.algorithms.rules import log_normalize, optimistic_payoff
from prefgym.errors import InvalidPolicyError
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.step_preference import DenseStepPreference, FeatureStepPreference
from prefgym.validation import check_choice, check_int, check_positive_float, check_positive_int, check_seed

__all__ = ["MarkovAgent", "resolve_markov_game", "stage_learning_rates", "exploitability_from_payoff"]


def resolve_markov_game(game_or_env) -> TabularMarkovGame:
    """A :class:`TabularMarkovGame` from a game, a matrix game (``H = 1``), an env or an env id.

    :func:`prefgym.envs.games.game_of` with ``kind="markov"``.
    """
    from prefgym.envs.games import game_of

    return game_of(game_or_env, kind="markov")


def stage_learning_rates(beta: float, horizon: int) -> np.ndarray:
    """``beta_h = beta / (H - h + 1)`` for ``h = 1..H`` (001 Thm 10, Sec. 3.2): ``(H,)``."""
    return beta / (horizon - np.arange(horizon))


def exploitability_from_payoff(game: TabularMarkovGame, payoff: np.ndarray) -> float:
    """``max_pi <nu_1, V^{pi, pi'}> - H/2`` given the stage payoff ``E_{d'} r - 1/2`` ``(K, H, S, A)``.

    The best-response backward induction of
    :meth:`TabularMarkovGame.best_response`, from the payoff instead of the
    opponent's policy (which saves its forward pass and payoff evaluation).
    """
    K, H, S, A = game.policy_shape
    V = np.zeros((K, S))
    for h in range(H - 1, -1, -1):
        Q = payoff[:, h]
        if h + 1 < H:
            Q = Q + (V @ game.step_transitions(h).reshape(S * A, S).T).reshape(K, S, A)
        V = Q.max(axis=-1)
    return float(V[np.arange(K), game.initial_states] @ game.initial_weights)


def _policy_from_occupancy(occ: np.ndarray) -> np.ndarray:
    """``pi_h(a|s) = d_h(s,a) / d_h(s)``; uniform where ``d_h(s) = 0`` (unreached states)."""
    mass = occ.sum(axis=-1, keepdims=True)
    uniform = np.full_like(occ, 1.0 / occ.shape[-1])
    return np.divide(occ, mass, out=uniform, where=mass > 0)


class MarkovAgent(BaseAgent):
    """Base of the tabular Markov-game agents (001's OMPO, MPO-AC, MD and 000's MMD lifted).

    Parameters
    ----------
    game
        A :class:`~prefgym.games.markov.TabularMarkovGame`, a (single)
        :class:`~prefgym.games.matrix.MatrixGame` (the ``H = 1`` one-state game),
        a prefgym env exposing one, or an env id.
    learning_rate
        ``beta`` of 001.
    init_policy
        ``pi^1``, ``(H, S, A)`` or ``(K, H, S, A)`` with full support; uniform by default.
    estimator
        ``"exact"`` (backward induction) or ``"sampled"`` (001 Eq. 2 with
        ``n_samples`` trajectory pairs per update; hard-Q agents only).
    n_samples
        ``K`` of 001 Alg. 2: trajectory pairs per update for ``estimator="sampled"``.
    seed
        Seeds the sampled estimator and :meth:`predict`.

    Attributes
    ----------
    history
        Per update: ``exploitability`` and ``average_exploitability`` ``(T,)``,
        and the duality gaps ``last_gap`` / ``average_gap`` (``2 x``, 001 Sec. 1.6),
        the keys of the matrix agents.
    """

    _hparam_names: ClassVar[tuple[str, ...]] = ()
    _state_names: ClassVar[tuple[str, ...]] = ()
    _history_state: ClassVar[tuple[str, ...]] = ("exploitability", "average_exploitability")
    #: whether the update needs the soft Q of 001 Thm 10 (no Monte Carlo estimate)
    _soft_q: ClassVar[bool] = False

    def __init__(
        self,
        game,
        learning_rate: float = 0.1,
        init_policy: np.ndarray | None = None,
        estimator: str = "exact",
        n_samples: int = 64,
        seed: int | None = None,
        verbose: int = 0,
    ):
        seed = check_seed(seed)
        verbose = check_int(verbose, "verbose", minimum=0)
        super().__init__(seed=seed, verbose=verbose)
        self._env = game if is_env(game) else None
        self.game = resolve_markov_game(game)
        self.learning_rate = check_positive_float(learning_rate, "learning_rate")
        check_choice(estimator, "estimator", ESTIMATORS)
        if estimator == "sampled" and self._uses_soft_q():
            raise ValueError(f"{type(self).__name__} with these settings needs the soft Q of 001 Thm 10, "
                             "which has no Monte Carlo estimate; use estimator='exact' (or, for OMPO, "
                             "form='policy', 001 Alg. 2)")
        self.estimator, self.n_samples = estimator, check_positive_int(n_samples, "n_samples")
        shape = self.game.policy_shape
        if init_policy is None:
            init = np.full(shape, 1.0 / self.game.n_actions)
        else:
            if np.shape(init_policy) not in (shape, shape[1:]):
                raise InvalidPolicyError(f"init_policy must have shape (H, S, A) = {shape[1:]} or "
                                         f"(K, H, S, A) = {shape}; got {np.shape(init_policy)}")
            init = np.broadcast_to(self.game.check_policy(init_policy, "init_policy"), shape)
            if (init <= 0).any():
                raise InvalidPolicyError("init_policy must have full support (softmax policies are interior)")
        self.init_policy = np.array(init)
        with np.errstate(divide="ignore"):
            self.logits, self._policy = log_normalize(np.log(self.init_policy))
        self._occupancy = self.game.occupancy(self._policy)
        self._payoff = self.game.stage_payoff(self._occupancy)
        # 001 Alg. 1: d^0 = d^1, so the first optimistic reward is r^1
        self.prev_logits, self._prev_policy = self.logits.copy(), self._policy.copy()
        self.prev_payoff = self._payoff.copy()
        self._sum_occupancy = self._occupancy.copy()
        self._sum_payoff = self._payoff.copy()
        self._count = 1
        self._last_expl = exploitability_from_payoff(self.game, self._payoff)
        self._avg_expl = self._last_expl
        self._expl, self._avg_expl_hist = np.empty(0), np.empty(0)

    def _uses_soft_q(self) -> bool:
        return self._soft_q

    # ---------------------------------------------------------- the update
    def _update(self) -> np.ndarray:
        """Return the next (unnormalised) logits from the current state."""
        raise NotImplementedError

    def _hard_q(self, optimistic: bool = False) -> np.ndarray:
        """Hard Q of ``pi^t`` for ``r^t`` or the optimistic ``r~^t = 2 r^t - r^{t-1}``.

        Exact (Lemma 2 backward induction) or the Monte Carlo ``Q-hat`` of 001
        Eq. (2) from ``n_samples`` pairs drawn with :attr:`rng`; its first
        optimistic iteration uses Alg. 2's single-term estimator (same mean, as
        ``d^0 = d^1``).
        """
        if self.estimator == "exact":
            reward = optimistic_payoff(self._payoff, self.prev_payoff) if optimistic else self._payoff
            return exact_q(self.game, self._policy, reward)
        prev = self._prev_policy if optimistic and self.num_iterations > 0 else None
        return sampled_q(self.game, self._policy, self.n_samples, self.rng, prev_policy=prev)[0]

    # ------------------------------------------------------------- results
    @property
    def policy(self) -> np.ndarray:
        """The last iterate ``pi^t``, ``(K, H, S, A)``."""
        return self._policy

    @property
    def occupancy(self) -> np.ndarray:
        """``d^t_{h|s_1}(s, a)`` of the last iterate, ``(K, H, S, A)``."""
        return self._occupancy

    @property
    def average_policy(self) -> np.ndarray:
        """The policy whose occupancy is the mean of all iterates' (the initial one included).

        ``pi_bar_h(a|s) = sum_t d_h^t(s,a) / sum_t d_h^t(s)`` (001 Thm 8 proof, Alg. 1
        output); uniform at states no iterate reaches.
        """
        return _policy_from_occupancy(self._sum_occupancy)

    @property
    def history(self) -> dict[str, np.ndarray]:
        """Per-update exploitability of the last and average iterates, and the duality gaps (``2 x``)."""
        expl, avg = self._expl_arrays()
        return {"exploitability": expl, "average_exploitability": avg,
                "last_gap": 2.0 * expl, "average_gap": 2.0 * avg}

    def _expl_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Exploitabilities so far, those of a :meth:`learn` call in progress included."""
        return self._curves_so_far(self._expl, self._avg_expl_hist)

    def exploitability(self, which: str = "last") -> float:
        """Exploitability of the ``"last"`` or ``"average"`` iterate (001 Sec. 4.1)."""
        if which not in ("last", "average"):
            raise ValueError(f"which must be 'last' or 'average'; got {which!r}")
        return self._last_expl if which == "last" else self._avg_expl

    def current_gap(self, which: str = "last") -> np.ndarray:
        """Duality gap of the symmetric profile, ``2 x`` exploitability (for StopTrainingOnGap)."""
        return np.asarray(2.0 * self.exploitability(which))

    def predict(self, observation=None, state=None, episode_start=None, deterministic: bool = False):
        """Sample actions of the last iterate at the player's own state(s).

        Policies are non-stationary, so the step ``h`` (0-based) travels in
        SB3's recurrent ``state``: pass ``state=h`` (int or array matching the
        observations; ``None`` is ``h = 0``) and feed the returned state back,
        it is ``h + 1``. Where ``episode_start`` is true, ``h`` restarts at 0.
        With several start states (``K > 1``) pass ``state=(h, k)``, ``k``
        indexing ``game.initial_states``; the returned state is ``(h + 1, k)``.
        ``observation=None`` means the start state (e.g. for ``H = 1`` games).

        Returns
        -------
        action, state
            Actions shaped like ``observation`` (an int for a scalar) and the next state.
        """
        K, H, S, _ = self.game.policy_shape
        pair = isinstance(state, tuple)
        h, k = state if pair else (state, None)
        if k is None:
            if K > 1:
                raise ValueError(f"the game has {K} start states; pass state=(h, k) with the start index k")
            k = 0
        h = np.zeros((), int) if h is None else np.asarray(h)
        if episode_start is not None:
            h = np.where(np.asarray(episode_start, bool), 0, h)
        k = np.asarray(k)
        s = self.game.initial_states[k] if observation is None else np.asarray(observation)
        for name, arr, n in (("observation", s, S), ("step h", h, H), ("start k", k, K)):
            if not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any() or (arr >= n).any():
                raise ValueError(f"{name} must be an integer in [0, {n}); got {arr}")
        pi = self._policy[k, h, s]
        if deterministic:
            act = pi.argmax(axis=-1)
        else:
            u = self.rng.random((*pi.shape[:-1], 1))
            act = (pi.cumsum(axis=-1) < u).sum(axis=-1).clip(max=pi.shape[-1] - 1)
        nxt = h + 1
        if act.ndim == 0:
            act, nxt = int(act), int(nxt)
        return act, ((nxt, k if np.ndim(k) else int(k)) if pair else nxt)

    # ------------------------------------------------------- training loop
    def _setup_learn(self, total_iterations: int) -> None:
        self._start_curve_buffers((total_iterations,))

    def _iterate(self, index: int) -> None:
        new = self._update()
        self.prev_logits, self._prev_policy, self.prev_payoff = self.logits, self._policy, self._payoff
        self.logits, self._policy = log_normalize(new)
        self._occupancy = self.game.occupancy(self._policy)
        self._payoff = self.game.stage_payoff(self._occupancy)
        self._sum_occupancy += self._occupancy
        self._sum_payoff += self._payoff
        self._count += 1
        self._last_expl = self._buf_last[index] = exploitability_from_payoff(self.game, self._payoff)
        self._avg_expl = self._buf_avg[index] = exploitability_from_payoff(
            self.game, self._sum_payoff / self._count)
        self._buf_n = index + 1

    def _step_info(self, index: int) -> dict[str, float]:
        """``exploitability`` and ``average_exploitability`` of update ``index`` (001 Sec. 4.1)."""
        return {"exploitability": float(self._buf_last[index]),
                "average_exploitability": float(self._buf_avg[index])}

    def get_env(self):
        """The env the agent was built from, else a :class:`~prefgym.envs.gridworld.GridworldEnv`
        of its game, as an SB3 ``DummyVecEnv`` when SB3 is installed."""
        def default_env():
            from prefgym.envs.gridworld import GridworldEnv

            return GridworldEnv(game=self.game)

        return self._cached_vec_env(default_env)

    def _finish_learn(self, done: int) -> None:
        self._expl, self._avg_expl_hist = self._flush_curve_buffers(self._expl, self._avg_expl_hist, done)

    # --------------------------------------------------------- persistence
    def _get_hparams(self) -> dict[str, Any]:
        base = {"learning_rate": self.learning_rate, "estimator": self.estimator,
                "n_samples": self.n_samples, "seed": self.seed, "verbose": self.verbose}
        return {**base, **{k: getattr(self, k) for k in self._hparam_names}}

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            **_game_arrays(self.game),
            "init_policy": self.init_policy,
            "logits": self.logits, "policy": self._policy,
            "prev_logits": self.prev_logits, "prev_policy": self._prev_policy,
            "occupancy": self._occupancy, "payoff": self._payoff, "prev_payoff": self.prev_payoff,
            "sum_occupancy": self._sum_occupancy, "sum_payoff": self._sum_payoff,
            "count": np.array(self._count),
            "current_exploitability": np.array([self._last_expl, self._avg_expl]),
        }
        state["exploitability"], state["average_exploitability"] = self._expl_arrays()
        state.update({k: np.asarray(getattr(self, k)) for k in self._state_names})
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.logits, self._policy = state["logits"].copy(), state["policy"].copy()
        self.prev_logits, self._prev_policy = state["prev_logits"].copy(), state["prev_policy"].copy()
        self._occupancy, self._payoff = state["occupancy"].copy(), state["payoff"].copy()
        self.prev_payoff = state["prev_payoff"].copy()
        self._sum_occupancy, self._sum_payoff = state["sum_occupancy"].copy(), state["sum_payoff"].copy()
        self._count = int(state["count"])
        self._last_expl, self._avg_expl = (float(x) for x in state["current_exploitability"])
        self._expl = state["exploitability"].copy()
        self._avg_expl_hist = state["average_exploitability"].copy()
        for k in self._state_names:
            setattr(self, k, state[k].copy())

    @classmethod
    def _from_saved(cls, hparams: dict, state: dict[str, np.ndarray], env) -> MarkovAgent:
        game = resolve_markov_game(env) if env is not None else _game_from_arrays(state)
        if game.policy_shape != state["logits"].shape:
            raise ValueError(f"the env's game has policy shape (K, H, S, A) = {game.policy_shape}; the "
                             f"saved agent was trained on {state['logits'].shape}")
        return cls(game, init_policy=state["init_policy"], **cls._saved_kwargs(hparams, state))

    @classmethod
    def _saved_kwargs(cls, hparams: dict, state: dict[str, np.ndarray]) -> dict[str, Any]:
        """Constructor keywords from the saved hyper-parameters (arrays live in ``state``)."""
        return dict(hparams)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.game!r}, learning_rate={self.learning_rate:g})"


def _game_arrays(game: TabularMarkovGame) -> dict[str, np.ndarray]:
    """The arrays that rebuild ``game`` (preferences stored compactly when possible)."""
    out = {"game_transitions": game.transitions, "game_initial_distribution": game.initial_distribution,
           "game_horizon": np.array(game.horizon)}
    pref = game.preference
    if isinstance(pref, DenseStepPreference):
        out["game_preference"] = pref.tensor
    elif isinstance(pref, FeatureStepPreference):
        out["game_preference_features"], out["game_preference_skew"] = pref.features, pref.skew
    else:
        out["game_preference"] = pref.dense(game.horizon)
    layout = game.layout
    if layout is not None and hasattr(layout, "n_cells") and hasattr(layout, "width"):
        out["game_grid_layout"] = np.array([layout.n_cells, layout.width])
    labels = getattr(game, "cell_labels", None)  # renderers' labels of the hand-made gridworlds
    if isinstance(labels, dict) and labels:
        out["game_cell_label_cells"] = np.array([int(c) for c in labels], dtype=np.int64)
        out["game_cell_label_text"] = np.array([str(v) for v in labels.values()])
    return out


def _game_from_arrays(state: dict[str, np.ndarray]) -> TabularMarkovGame:
    if "game_preference" in state:
        pref = DenseStepPreference(state["game_preference"])
    else:
        pref = FeatureStepPreference(state["game_preference_features"], state["game_preference_skew"])
    layout = None
    if "game_grid_layout" in state:
        from prefgym.games.gridworld import GridLayout

        layout = GridLayout(*(int(x) for x in state["game_grid_layout"]))
    game = TabularMarkovGame(state["game_transitions"], pref, state["game_initial_distribution"],
                             int(state["game_horizon"]), layout=layout)
    if "game_cell_label_cells" in state:
        game.cell_labels = {int(c): str(t) for c, t in zip(state["game_cell_label_cells"],
                                                           state["game_cell_label_text"], strict=True)}
    return game
