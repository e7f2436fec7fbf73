"""Tabular Markov preference games of 001 (OMPO), solved exactly.

Each player runs its own trajectory in a copy of one episodic MDP
``(S, A, f, nu_1, H)`` from a *shared* start ``S_1 = S'_1 ~ nu_1``; at every
step ``h`` the pair is scored by ``r_h(S_h, A_h, S'_h, A'_h)``. A player's
policy sees only its own state (001 Remark 1). Given the start, the joint
occupancy factorises, so the value is the bilinear form of 001 Sec. 2.4

    <nu_1, V^{pi, pi'}> = sum_{s_1} nu_1(s_1) sum_h d^pi_{h|s_1}^T r_h d^{pi'}_{h|s_1},

and with ``r - 1/2`` skew, ``<nu_1, V^{pi, pi}> = H / 2`` for every ``pi``.

Because the game decouples over the start state (001 App. E.3), policies may
condition on it (001 footnote 4): a policy is an array ``(K, H, S, A)`` with
one non-stationary policy per start state in the support of ``nu_1``
(``K = 1`` for a single start; an ``(H, S, A)`` policy is broadcast).
Best responses, exploitability and duality gaps are exact and vectorised
over ``(k, h, s, a)``: one forward pass for occupancies, one backward
induction for values.
"""

from __future__ import annotations

import numpy as np

from prefgym.errors import InvalidArgumentError, InvalidGameError, InvalidPolicyError, InvalidTypeError
from prefgym.games.matrix import MatrixGame
from prefgym.games.step_preference import DenseStepPreference, StepPreference
from prefgym.validation import check_finite_array, check_int, check_real_array

__all__ = ["TabularMarkovGame"]

#: largest policy ``(K, H, S, A)`` a game may need (512 MiB of float64)
MAX_POLICY_ENTRIES = 2**26


class TabularMarkovGame:
    """A two-player constant-sum Markov preference game (001 Sec. 2).

    Parameters
    ----------
    transitions
        ``f(s' | s, a)``: ``(S, A, S)`` for every step, or ``(H - 1, S, A, S)``
        for the moves from step ``h`` to ``h + 1``.
    preference
        A :class:`~prefgym.games.step_preference.StepPreference`, or a dense
        tensor ``(S, A, S, A)`` / ``(H, S, A, S, A)`` of ``P([s,a] > [s',a'])``.
    initial_distribution
        ``nu_1`` over states, ``(S,)``.
    horizon
        Number of steps ``H``.
    layout
        Optional :class:`~prefgym.games.gridworld.GridLayout` placing states on a
        grid, used by renderers.
    """

    def __init__(self, transitions, preference, initial_distribution, horizon: int,
                 layout=None, atol: float = 1e-8):
        self.layout = layout
        self.horizon = H = check_int(horizon, "horizon", minimum=1)
        pref = preference if isinstance(preference, StepPreference) else DenseStepPreference(preference, atol)
        pref.check_horizon(H)
        self.preference = pref
        S, A = pref.n_states, pref.n_actions
        f = check_finite_array(transitions, "transitions", InvalidGameError)
        f = f[None] if f.ndim == 3 else f
        if f.ndim != 4 or f.shape[1:] != (S, A, S):
            raise InvalidGameError(
                f"transitions must have shape (S, A, S) = ({S}, {A}, {S}) or (H-1, S, A, S); "
                f"got {np.shape(transitions)}"
            )
        if f.shape[0] not in (1, H - 1, H):
            raise InvalidGameError(f"transitions have {f.shape[0]} steps; the game needs 1 or H-1 = {H - 1}")
        if np.isnan(f).any() or (f < -atol).any():
            i = tuple(int(x) for x in np.argwhere(np.isnan(f) | (f < -atol))[0])
            raise InvalidGameError(f"transition f[h, s, a, s'] = f{i} = {f[i]} is negative or NaN")
        rows = np.abs(f.sum(axis=-1) - 1.0) > atol
        if rows.any():
            h, s, a = (int(x) for x in np.argwhere(rows)[0])
            raise InvalidGameError(
                f"transition row f[{h}, {s}, {a}, :] sums to {f[h, s, a].sum():.6g}, not 1"
            )
        self.transitions = np.clip(f[: max(H - 1, 1)], 0.0, None)
        nu = check_real_array(initial_distribution, "initial_distribution", InvalidGameError)
        if nu.shape != (S,) or not np.isfinite(nu).all() or (nu < 0).any() or abs(nu.sum() - 1) > atol:
            raise InvalidGameError(f"initial_distribution must be {S} non-negative numbers summing to 1; "
                                   f"got {nu}")
        entries = len(np.flatnonzero(nu > 0)) * H * S * A
        if entries > MAX_POLICY_ENTRIES:
            raise InvalidGameError(f"a policy of this game has (K, H, S, A) = {entries} entries "
                                   f"(horizon={H}); the limit is {MAX_POLICY_ENTRIES} (2**26, 512 MiB)")
        self.initial_distribution = nu
        self.initial_states = np.flatnonzero(nu > 0)
        self.initial_weights = nu[self.initial_states]
        self.n_states, self.n_actions = S, A

    #: :attr:`PreferenceGame.kind <prefgym.games.protocol.PreferenceGame.kind>`
    kind = "markov"

    # ------------------------------------------------- the PreferenceGame face
    def start_states(self) -> tuple[int, ...]:
        """The states with positive initial probability (:attr:`initial_states`)."""
        return tuple(int(s) for s in self.initial_states)

    def actions(self, state: int) -> tuple[int, ...]:
        """The actions ``0 .. A - 1`` (every state offers all of them)."""
        check_int(state, "state", minimum=0, maximum=self.n_states - 1)
        return tuple(range(self.n_actions))

    def preference_between(self, first, second) -> np.ndarray:
        """``r_h(s, a, s', a') = P([s, a] > [s', a'])`` for step pairs ``(h, s, a)`` and ``(h, s', a')``.

        ``first = (h, s, a)``, ``second = (h, s', a')``; ``h`` is 0-based and the same in both;
        entries may be integer arrays (broadcast).
        """
        parts = []
        bounds = (self.horizon, self.n_states, self.n_actions)
        for x, name in ((first, "first"), (second, "second")):
            if not isinstance(x, tuple | list) or len(x) != 3:
                raise InvalidArgumentError(f"{name} must be a step pair (h, s, a); got {x!r:.80}")
            parts.append(tuple(_index_array(x[j], f"{name}[{j}]", bounds[j]) for j in range(3)))
        (h, s, a), (h2, s2, a2) = parts
        if np.shape(h) != np.shape(h2) or not np.array_equal(h, h2):
            raise InvalidArgumentError(f"first and second must be at the same step h; got h={h} and h={h2}")
        return self.preference.prob(h, s, a, s2, a2)

    # ------------------------------------------------------------- basics
    @property
    def n_initial(self) -> int:
        """``K``: states with positive initial probability."""
        return int(self.initial_states.size)

    @property
    def policy_shape(self) -> tuple[int, int, int, int]:
        return (self.n_initial, self.horizon, self.n_states, self.n_actions)

    def __repr__(self) -> str:
        return (f"TabularMarkovGame(n_states={self.n_states}, n_actions={self.n_actions}, "
                f"horizon={self.horizon}, n_initial={self.n_initial})")

    def step_transitions(self, h: int) -> np.ndarray:
        """``f(. | ., .)`` used to move from step ``h`` to ``h + 1``: ``(S, A, S)``."""
        return self.transitions[min(h, self.transitions.shape[0] - 1)]

    def _next_state_distribution(self, d_h: np.ndarray, h: int) -> np.ndarray:
        """``rho_{h+1}(s') = sum_{s,a} d_h(s,a) f(s'|s,a)``: one GEMV/GEMM over ``f``."""
        S, A = self.n_states, self.n_actions
        return d_h.reshape(*d_h.shape[:-2], S * A) @ self.step_transitions(h).reshape(S * A, S)

    def _expected_next_value(self, v_next: np.ndarray, h: int) -> np.ndarray:
        """``sum_{s'} f(s'|s,a) V_{h+1}(s')`` for every ``(s, a)``: one GEMV/GEMM over ``f``."""
        S, A = self.n_states, self.n_actions
        out = v_next @ self.step_transitions(h).reshape(S * A, S).T
        return out.reshape(*v_next.shape[:-1], S, A)

    def uniform_policy(self) -> np.ndarray:
        return np.full(self.policy_shape, 1.0 / self.n_actions)

    def check_policy(self, policy, name: str = "policy", atol: float = 1e-6) -> np.ndarray:
        """Validate and broadcast a policy ``(H, S, A)`` / ``(..., K, H, S, A)``."""
        pi = check_real_array(policy, name, InvalidPolicyError)
        if pi.ndim == 3 and pi.shape == self.policy_shape[1:]:
            pi = np.broadcast_to(pi, self.policy_shape)
        if pi.shape[-4:] != self.policy_shape:
            raise InvalidPolicyError(f"{name} must have shape (H, S, A) or (K, H, S, A) = "
                                     f"{self.policy_shape}; got {np.shape(policy)}")
        if not np.isfinite(pi).all() or (pi < -atol).any():
            raise InvalidPolicyError(f"{name} has negative or NaN (or inf) probabilities; each row must be a "
                                     "probability vector")
        sums = pi.sum(axis=-1)
        if (np.abs(sums - 1) > atol).any():
            idx = tuple(int(i) for i in np.argwhere(np.abs(sums - 1) > atol)[0])
            raise InvalidPolicyError(f"{name}[k, h, s] = {name}{idx} sums to {sums[idx]:.6g}, not 1")
        return pi

    # --------------------------------------------------------- occupancies
    def occupancy(self, policy: np.ndarray) -> np.ndarray:
        """``d_{h|s_1}(s, a)`` for each start ``k``: ``(..., K, H, S, A)`` (one forward pass)."""
        pi = self.check_policy(policy)
        d = np.empty(np.broadcast_shapes(pi.shape, self.policy_shape))
        rho = np.zeros((*d.shape[:-3], self.n_states))
        rho[..., np.arange(self.n_initial), self.initial_states] = 1.0
        for h in range(self.horizon):
            d[..., h, :, :] = rho[..., :, None] * pi[..., h, :, :]
            if h + 1 < self.horizon:  # rho_{h+1}(s') = sum_{s,a} d_h(s,a) f(s'|s,a)
                rho = self._next_state_distribution(d[..., h, :, :], h)
        return d

    def stage_payoff(self, opponent_occupancy: np.ndarray) -> np.ndarray:
        """``E_{(s',a') ~ d'_h} r_h(s, a, s', a') - 1/2`` for every ``(k, h, s, a)``."""
        return self.preference.apply(opponent_occupancy)

    # ------------------------------------------------------------- values
    def value(self, policy: np.ndarray, opponent: np.ndarray) -> np.ndarray:
        """``<nu_1, V^{pi, pi'}>`` by the factorised bilinear form (001 Sec. 2.4)."""
        d, d2 = self.occupancy(policy), self.occupancy(opponent)
        per_start = np.einsum("...khsa,...khsa->...k", d, self.stage_payoff(d2))
        return self.horizon / 2 + per_start @ self.initial_weights

    def q_values(self, policy: np.ndarray, stage_reward: np.ndarray,
                 soft_beta: np.ndarray | float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Q and V of ``policy`` for a per-start stage reward ``(..., K, H, S, A)``.

        Backward induction ``Q_h = r_h + f V_{h+1}``, ``V_{H+1} = 0`` with the
        hard ``V_h = <pi_h, Q_h>`` (Lemma 2) or, with ``soft_beta = beta_h``
        (scalar or ``(H,)``), the soft ``V_h = log <pi_h, exp(beta_h Q_h)> / beta_h``
        of 001 Theorem 10. Returns ``Q (..., K, H, S, A)`` and ``V (..., K, H + 1, S)``.
        """
        pi = self.check_policy(policy)
        shape = np.broadcast_shapes(pi.shape, stage_reward.shape)
        Q = np.empty(shape)
        V = np.zeros((*shape[:-3], self.horizon + 1, self.n_states))
        betas = None if soft_beta is None else np.broadcast_to(np.asarray(soft_beta, float), (self.horizon,))
        for h in range(self.horizon - 1, -1, -1):
            Q[..., h, :, :] = stage_reward[..., h, :, :]
            if h + 1 < self.horizon:
                Q[..., h, :, :] += self._expected_next_value(V[..., h + 1, :], h)
            if betas is None:
                V[..., h, :] = (pi[..., h, :, :] * Q[..., h, :, :]).sum(axis=-1)
            else:
                b = betas[h]
                with np.errstate(divide="ignore"):
                    z = np.log(pi[..., h, :, :]) + b * Q[..., h, :, :]
                m = z.max(axis=-1)
                V[..., h, :] = (m + np.log(np.exp(z - m[..., None]).sum(axis=-1))) / b
        return Q, V

    def best_response(self, opponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A deterministic best response to ``opponent`` and its skew value per start.

        The single-agent MDP with stage reward ``E_{d'_h} r_h - 1/2``, solved by
        backward induction (one per start state). Returns the policy
        ``(..., K, H, S, A)`` and ``max_pi <nu_1, V^{pi, pi'}> - H/2`` per start ``(..., K)``.
        """
        reward = self.stage_payoff(self.occupancy(opponent))
        Q = np.empty_like(reward)
        V = np.zeros(reward.shape[:-1])  # (..., K, H, S), V[h] = max_a Q_h
        for h in range(self.horizon - 1, -1, -1):
            Q[..., h, :, :] = reward[..., h, :, :]
            if h + 1 < self.horizon:
                Q[..., h, :, :] += self._expected_next_value(V[..., h + 1, :], h)
            V[..., h, :] = Q[..., h, :, :].max(axis=-1)
        best = np.eye(self.n_actions)[Q.argmax(axis=-1)]
        start_values = V[..., np.arange(self.n_initial), 0, self.initial_states]
        return best, start_values

    def exploitability(self, policy: np.ndarray) -> np.ndarray:
        """``max_pi <nu_1, V^{pi, pi^k} - V^{pi^k, pi^k}>`` (001 Sec. 4.1, Fig. 1a)."""
        return self.best_response(policy)[1] @ self.initial_weights

    def duality_gap(self, policy: np.ndarray, opponent: np.ndarray | None = None) -> np.ndarray:
        """``max_s V(s, pi') - min_s V(pi, s)``; ``2 x`` exploitability for ``pi' = pi``."""
        opponent = policy if opponent is None else opponent
        return self.exploitability(opponent) + self.exploitability(policy)

    # ----------------------------------------------------------- sampling
    def sample_trajectories(
        self, policy: np.ndarray, n: int, rng: np.random.Generator, starts: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``n`` trajectories; returns start indices ``(n,)``, states and actions ``(n, H)``.

        ``starts`` (indices into :attr:`initial_states`) fixes the shared start
        of each trajectory, so two calls can produce the pairs of 001's game.
        """
        pi = self.check_policy(policy)
        n = check_int(n, "n", minimum=0)
        if not isinstance(rng, np.random.Generator):
            raise InvalidTypeError(f"rng must be a numpy Generator; got {type(rng).__name__}")
        if starts is None:
            k = rng.choice(self.n_initial, size=n, p=self.initial_weights)
        else:
            k = np.asarray(starts)
            if k.shape != (n,) or not np.issubdtype(k.dtype, np.integer) or (k < 0).any() \
                    or (k >= self.n_initial).any():
                raise InvalidArgumentError(f"starts must be {n} integers in [0, {self.n_initial}); "
                                           f"got {np.asarray(starts)!r:.80}")
        states = np.empty((n, self.horizon), dtype=np.int64)
        actions = np.empty((n, self.horizon), dtype=np.int64)
        s = self.initial_states[k]
        for h in range(self.horizon):
            states[:, h] = s
            actions[:, h] = _sample_rows(pi[k, h, s], rng)
            if h + 1 < self.horizon:
                s = _sample_rows(self.step_transitions(h)[s, actions[:, h]], rng)
        return k, states, actions

    # -------------------------------------------------------- conversions
    @classmethod
    def from_matrix_game(cls, game: MatrixGame) -> TabularMarkovGame:
        """The ``H = 1``, one-state game equal to a matrix game."""
        P = game.preference
        n = P.shape[-1]
        return cls(np.ones((1, n, 1)), P.reshape(1, n, 1, n), np.ones(1), horizon=1)


def _index_array(x, name: str, n: int) -> np.ndarray:
    """An integer (array) in ``0 .. n - 1``."""
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any() or (arr >= n).any():
        raise InvalidArgumentError(f"{name} must be an integer (array) in 0..{n - 1}; got {x!r:.80}")
    return arr


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``probs`` (inverse CDF, vectorised)."""
    u = rng.random((probs.shape[0], 1))
    return np.minimum((probs.cumsum(axis=-1) < u).sum(axis=-1), probs.shape[-1] - 1)
