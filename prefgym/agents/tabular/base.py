"""Self-play over the exact payoffs of a (batch of) matrix game(s).

A tabular agent keeps one softmax policy per game (logits of shape
``(*batch, n)``), updates it with a rule of :mod:`prefgym.algorithms.rules` fed by
the exact payoff vector ``g = A pi``, and records per update the duality gap
of the last iterate and of the average iterate. The payoff vector of the new
iterate is computed once and reused for the gap and the next update, and the
average iterate's payoff is the running mean of those vectors (``A`` is
linear), so recording costs no extra mat-vec.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from prefgym.agents.base import BaseAgent, is_env
from prefgym.algorithms.rules import log_normalize
from prefgym.errors import InvalidPolicyError
from prefgym.games.matrix import MatrixGame
from prefgym.validation import check_int, check_positive_float, check_seed

__all__ = ["TabularAgent", "resolve_game"]


def resolve_game(game_or_env) -> MatrixGame:
    """A :class:`MatrixGame` from a game, a matrix, a preference model, an env or an env id.

    :func:`prefgym.envs.games.game_of` with ``kind="matrix"``.
    """
    from prefgym.envs.games import game_of

    return game_of(game_or_env, kind="matrix")


class TabularAgent(BaseAgent):
    """Base of the tabular NLHF solvers.

    Parameters
    ----------
    game
        A :class:`MatrixGame` (possibly a batch), a preference matrix, a
        preference model, a prefgym env or env id.
    learning_rate
        Step size ``eta`` of the mirror-descent rule.
    init_policy
        Initial policy (``(n,)`` or ``(*batch, n)``); uniform by default.
    seed
        Seed of the action sampler in :meth:`predict`.
    """

    #: constructor arguments beyond the base ones, saved with the agent
    _hparam_names: ClassVar[tuple[str, ...]] = ()
    #: array attributes beyond the base ones, saved with the agent
    _state_names: ClassVar[tuple[str, ...]] = ()
    _history_state: ClassVar[tuple[str, ...]] = ("last_gap", "average_gap")

    def __init__(
        self,
        game,
        learning_rate: float = 0.1,
        init_policy: np.ndarray | None = None,
        seed: int | None = None,
        verbose: int = 0,
    ):
        seed = check_seed(seed)
        verbose = check_int(verbose, "verbose", minimum=0)
        super().__init__(seed=seed, verbose=verbose)
        self._env = game if is_env(game) else None
        self.game = resolve_game(game)
        self.learning_rate = check_positive_float(learning_rate, "learning_rate")
        shape = (*self.game.batch_shape, self.game.n_actions)
        if init_policy is None:
            init = np.full(shape, 1.0 / self.game.n_actions)
        else:
            init = np.broadcast_to(self.game.check_policy(init_policy, "init_policy"), shape)
            if (init <= 0).any():
                raise InvalidPolicyError("init_policy must have full support (softmax policies are interior)")
        self.init_policy = np.array(init)
        with np.errstate(divide="ignore"):
            self.logits, self._policy = log_normalize(np.log(self.init_policy))
        self._payoff = self.game._payoff_vector(self._policy)
        self._sum_policy = self._policy.copy()
        self._sum_payoff = self._payoff.copy()
        self._count = 1
        empty = np.empty((0, *self.game.batch_shape))
        self._last_gap, self._average_gap = empty, empty.copy()

    # ------------------------------------------------------------ the rule
    def _update(self) -> np.ndarray:
        """Return the next logits from ``self.logits``, ``self.policy`` and ``self._payoff``."""
        raise NotImplementedError

    # ------------------------------------------------------------- results
    @property
    def policy(self) -> np.ndarray:
        """The last iterate ``pi_t`` (``(*batch, n)``)."""
        return self._policy

    @property
    def average_policy(self) -> np.ndarray:
        """The average of all iterates so far, the initial one included."""
        return self._sum_policy / self._count

    @property
    def history(self) -> dict[str, np.ndarray]:
        """Per-update duality gaps: ``last_gap`` and ``average_gap``, shape ``(T, *batch)``."""
        last, avg = self._gap_arrays()
        return {"last_gap": last, "average_gap": avg}

    def _gap_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The gaps so far, those of a :meth:`learn` call in progress included (e.g. for checkpoints)."""
        return self._curves_so_far(self._last_gap, self._average_gap)

    def current_gap(self, which: str = "last") -> np.ndarray:
        """Duality gap ``2 max_a (A pi)(a)`` of the last or the average iterate."""
        g = self._payoff if which == "last" else self._sum_payoff / self._count
        return 2.0 * g.max(axis=-1)

    def predict(self, observation=None, state=None, episode_start=None, deterministic: bool = False):
        """Sample an action from the last iterate (the observation of a matrix game is moot).

        A batch of observations (``shape (k,)``) gets ``k`` actions; a batch of
        games gets one action per game.
        """
        pi = self._policy
        k = np.shape(observation)[0] if np.ndim(observation) >= 1 and not self.game.batch_shape else None
        if deterministic:
            act = pi.argmax(axis=-1)
            return (np.full(k, act) if k is not None else act), state
        if k is not None:
            return self.rng.choice(pi.shape[-1], size=k, p=pi), state
        u = self.rng.random((*pi.shape[:-1], 1))
        act = (pi.cumsum(axis=-1) < u).sum(axis=-1).clip(max=pi.shape[-1] - 1)
        return (int(act) if act.ndim == 0 else act), state

    # ------------------------------------------------------- training loop
    def _setup_learn(self, total_iterations: int) -> None:
        self._start_curve_buffers((total_iterations, *self.game.batch_shape))

    def _iterate(self, index: int) -> None:
        self.logits, self._policy = log_normalize(self._update())
        self._payoff = self.game._payoff_vector(self._policy)
        self._sum_policy += self._policy
        self._sum_payoff += self._payoff
        self._count += 1
        self._buf_last[index] = 2.0 * self._payoff.max(axis=-1)
        self._buf_avg[index] = 2.0 * (self._sum_payoff / self._count).max(axis=-1)
        self._buf_n = index + 1

    def _step_info(self, index: int) -> dict[str, float]:
        """``last_gap`` and ``average_gap`` of update ``index``; for a batch of games their
        maximum over the batch and ``*_mean`` their mean."""
        last, avg = self._buf_last[index], self._buf_avg[index]
        if not self.game.batch_shape:
            return {"last_gap": float(last), "average_gap": float(avg)}
        return {"last_gap": float(last.max()), "last_gap_mean": float(last.mean()),
                "average_gap": float(avg.max()), "average_gap_mean": float(avg.mean())}

    def get_env(self):
        """The env the agent was built from, else a :class:`~prefgym.envs.matrix.MatrixGameEnv`
        of its game, as an SB3 ``DummyVecEnv`` when SB3 is installed (None for a batch of games)."""
        if self.game.batch_shape:
            return None
        def default_env():
            from prefgym.envs.matrix import MatrixGameEnv

            return MatrixGameEnv(game=self.game)

        return self._cached_vec_env(default_env)

    def _finish_learn(self, done: int) -> None:
        self._last_gap, self._average_gap = self._flush_curve_buffers(self._last_gap, self._average_gap, done)

    # --------------------------------------------------------- persistence
    def _get_hparams(self) -> dict[str, Any]:
        base = {"learning_rate": self.learning_rate, "init_policy": self.init_policy,
                "seed": self.seed, "verbose": self.verbose}
        return {**base, **{k: getattr(self, k) for k in self._hparam_names}}

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            "game_preference": self.game.preference,
            "logits": self.logits,
            "policy": self._policy,
            "sum_policy": self._sum_policy,
            "sum_payoff": self._sum_payoff,
            "count": np.array(self._count),
        }
        state["last_gap"], state["average_gap"] = self._gap_arrays()
        state.update({k: np.asarray(getattr(self, k)) for k in self._state_names})
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.logits, self._policy = log_normalize(state["logits"])
        saved = state.get("policy")
        if saved is not None and saved.shape == self._policy.shape \
                and np.allclose(saved, self._policy, rtol=0.0, atol=1e-12):
            # the saved pair, bit for bit: re-normalising the logits can move the last ulp
            self.logits, self._policy = state["logits"].copy(), saved.copy()
        self._payoff = self.game._payoff_vector(self._policy)
        self._sum_policy = state["sum_policy"].copy()
        self._sum_payoff = state["sum_payoff"].copy()
        self._count = int(state["count"])
        self._last_gap = state["last_gap"].copy()
        self._average_gap = state["average_gap"].copy()
        for k in self._state_names:
            setattr(self, k, state[k].copy())

    @classmethod
    def _from_saved(cls, hparams: dict, state: dict[str, np.ndarray], env) -> TabularAgent:
        game = resolve_game(env) if env is not None else MatrixGame(state["game_preference"])
        if game.preference.shape != state["game_preference"].shape:
            raise ValueError(
                f"the env's game has shape {game.preference.shape}; the saved agent was trained "
                f"on {state['game_preference'].shape}"
            )
        hp = dict(hparams)
        hp["init_policy"] = np.asarray(hp["init_policy"])
        return cls(game, **hp)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.game!r}, learning_rate={self.learning_rate:g})"
