"""Normal-form preference games in the skew-symmetric form of 002.

A preference matrix ``P[a, b] = P(a beats b)`` defines the symmetric
constant-sum game whose row player earns ``P(pi > rho) = pi^T P rho``. 002
(Sec. 2) works with the skew-symmetric payoff

    A = P - 1/2,      A^T = -A,      value = 0,

so ``(A pi)(a) = P(a > pi) - 1/2`` and a Nash equilibrium is any ``pi`` with
``max_a (A pi)(a) = 0``. A :class:`MatrixGame` may hold a *batch* of games
(payoff of shape ``(..., n, n)``); every method then works on matching batches
of strategies, so one call evaluates thousands of games.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from scipy.special import expit

from prefgym.errors import InvalidArgumentError, InvalidGameError, InvalidTypeError, SolverLimitError
from prefgym.preferences import (
    DEFAULT_ATOL,
    BradleyTerry,
    Cyclic,
    PreferenceModel,
    TabularPreference,
    validate_preference_matrix,
)
from prefgym.simplex import check_policy, kl, logsumexp_last
from prefgym.validation import (
    check_int,
    check_positive_float,
    check_positive_int,
    check_probability_vector,
    check_rng,
)

__all__ = [
    "MatrixGame",
    "rps",
    "cyclic",
    "random_skew_symmetric",
    "transitive",
    "planted_nash",
    "GENERATORS",
    "make_game",
    "DEFAULT_TIME_LIMIT",
]

#: default wall-clock limit (seconds) of :meth:`MatrixGame.nash_equilibrium`
DEFAULT_TIME_LIMIT = 30.0
#: measured on a 2-core machine (scipy HiGHS, random skew-symmetric games): the LP
#: takes ~0.5 s at n = 400, ~2.4 s at n = 600, ~9 s at n = 800 and ~13 s at n = 1000
LP_SIZE_NOTE = ("the exact LP takes about 0.5 s at n = 400, 2.4 s at n = 600, 9 s at n = 800 and "
                "13 s at n = 1000 actions on 2 CPU cores, and grows roughly as n^3")


class MatrixGame:
    """A (batch of) symmetric two-player constant-sum preference game(s).

    Parameters
    ----------
    preference
        A :class:`~prefgym.preferences.PreferenceModel`, or an array of shape
        ``(n, n)`` or ``(..., n, n)`` holding ``P(a beats b)``.
    atol
        Tolerance of the validity checks on the matrix.

    Examples
    --------
    >>> game = rps()
    >>> float(game.duality_gap(np.ones(3) / 3))
    0.0
    """

    def __init__(self, preference: PreferenceModel | np.ndarray | Sequence, atol: float = DEFAULT_ATOL):
        if preference is None or isinstance(preference, str | bytes | dict):
            raise InvalidTypeError("preference must be a PreferenceModel or an (n, n) / (..., n, n) "
                                   f"matrix of P(a beats b); got {type(preference).__name__}")
        if isinstance(preference, PreferenceModel) and not isinstance(preference, np.ndarray):
            P = validate_preference_matrix(preference.matrix(), atol)
            self.preference_model: PreferenceModel | None = preference
        else:
            P = validate_preference_matrix(preference, atol)
            self.preference_model = TabularPreference(P, atol) if P.ndim == 2 else None
        self.preference = P
        A = P - 0.5
        self.payoff = 0.5 * (A - np.swapaxes(A, -1, -2))  # exact skew-symmetry after rounding

    @classmethod
    def from_payoff(cls, payoff: np.ndarray) -> MatrixGame:
        """Build from a skew-symmetric payoff ``A`` with entries in ``[-1/2, 1/2]``."""
        from prefgym.validation import check_real_array

        return cls(check_real_array(payoff, "payoff", InvalidGameError) + 0.5)

    #: :attr:`PreferenceGame.kind <prefgym.games.protocol.PreferenceGame.kind>`
    kind = "matrix"

    # ----------------------------------------------------------------- shape
    @property
    def n_actions(self) -> int:
        return int(self.payoff.shape[-1])

    @property
    def horizon(self) -> int:
        """One move per episode."""
        return 1

    # ------------------------------------------------- the PreferenceGame face
    def start_states(self) -> tuple[int]:
        """The one state ``0``."""
        return (0,)

    def actions(self, state: int = 0) -> tuple[int, ...]:
        """The actions ``0 .. n - 1`` (of the one state ``0``)."""
        if state != 0:
            raise InvalidArgumentError(f"a matrix game has the one state 0; got state={state!r}")
        return tuple(range(self.n_actions))

    def preference_between(self, first, second) -> np.ndarray:
        """``P(first beats second)`` for actions (or arrays of them): ``preference[..., first, second]``."""
        a, b = _action_array(first, "first", self.n_actions), _action_array(second, "second", self.n_actions)
        return self.preference[..., a, b]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.payoff.shape[:-2])

    def __len__(self) -> int:
        if not self.batch_shape:
            raise InvalidTypeError("a single MatrixGame has no len(); it is not a batch")
        return self.batch_shape[0]

    def __getitem__(self, index) -> MatrixGame:
        if not self.batch_shape:
            raise InvalidTypeError("a single MatrixGame cannot be indexed")
        return MatrixGame(self.preference[index])

    @staticmethod
    def stack(games: Sequence[MatrixGame]) -> MatrixGame:
        """Stack games of equal size into one batch."""
        games = list(games)
        if not games or not all(isinstance(g, MatrixGame) for g in games):
            raise InvalidTypeError("stack takes a non-empty sequence of MatrixGame; got "
                                   f"{[type(g).__name__ for g in games][:5]}")
        if len({g.preference.shape for g in games}) != 1:
            raise InvalidGameError("stacked games must have equal shapes; got "
                                   f"{sorted({g.preference.shape for g in games})}")
        return MatrixGame(np.stack([g.preference for g in games]))

    def __repr__(self) -> str:
        batch = f", batch_shape={self.batch_shape}" if self.batch_shape else ""
        return f"MatrixGame(n_actions={self.n_actions}{batch})"

    # ---------------------------------------------------------------- payoffs
    def check_policy(self, pi, name: str = "policy") -> np.ndarray:
        """Validate a (batched) mixed strategy for this game."""
        return check_policy(pi, self.n_actions, name)

    def _strategy(self, pi, name: str) -> np.ndarray:
        """``pi`` checked to be a (batch of) probability vector(s), values unchanged."""
        p = check_probability_vector(pi, self.n_actions, name, renormalize=False)
        if self.batch_shape:
            try:
                np.broadcast_shapes(p.shape[:-1], self.batch_shape)
            except ValueError:
                raise InvalidArgumentError(
                    f"{name} of shape {p.shape} does not broadcast against this batch of games "
                    f"{self.batch_shape} x {self.n_actions} actions") from None
        return p

    def _payoff_vector(self, pi: np.ndarray) -> np.ndarray:
        """:meth:`payoff_vector` without the checks (for agents' inner loops)."""
        return np.matmul(self.payoff, pi[..., None])[..., 0]

    def payoff_vector(self, pi: np.ndarray) -> np.ndarray:
        """``(A pi)(a) = P(a > pi) - 1/2`` for every action ``a`` (batched)."""
        return self._payoff_vector(self._strategy(pi, "pi"))

    def win_rate(self, pi: np.ndarray, rho: np.ndarray) -> np.ndarray:
        """``P(pi > rho) = 1/2 + pi^T A rho``."""
        pi, rho = self._strategy(pi, "pi"), self._strategy(rho, "rho")
        return 0.5 + np.einsum("...i,...i->...", pi, self._payoff_vector(rho))

    def exploitability(self, pi: np.ndarray) -> np.ndarray:
        """``max_{pi'} P(pi' > pi) - 1/2 = max_a (A pi)(a)`` (>= 0, 0 iff NE)."""
        return self.payoff_vector(pi).max(axis=-1)

    def duality_gap(self, pi: np.ndarray, rho: np.ndarray | None = None) -> np.ndarray:
        """Duality gap of the profile ``(pi, rho)`` (``rho = pi`` if omitted).

        ``max_{pi'} pi'^T A rho - min_{rho'} pi^T A rho'``; for the symmetric
        profile this is ``2 max_a (A pi)(a)`` (002, Sec. 2).
        """
        if rho is None or rho is pi:  # A^T = -A: min_rho' pi^T A rho' = -max_a (A pi)(a), one mat-vec
            return 2.0 * self.exploitability(pi)
        return self.exploitability(rho) + self.exploitability(pi)

    def regularized_duality_gap(
        self, pi: np.ndarray, tau: float, reference: np.ndarray | None = None
    ) -> np.ndarray:
        """Duality gap of the KL-regularised game of 002 Sec. 3.2 at ``(pi, pi)``.

        ``V_tau(p, q) = p^T A q - tau KL(p||ref) + tau KL(q||ref)``; both best
        responses are ``softmax(log ref + A pi / tau)`` in closed form, giving
        ``2 tau logsumexp(log ref + A pi / tau) + 2 tau KL(pi || ref)``.
        """
        tau = check_positive_float(tau, "tau")
        ref = np.full(self.n_actions, 1.0 / self.n_actions) if reference is None else \
            self._strategy(reference, "reference")
        pi = self._strategy(pi, "pi")
        g = self._payoff_vector(pi)
        return 2.0 * tau * (logsumexp_last(np.log(ref) + g / tau) + kl(pi, ref))

    # ----------------------------------------------------------------- solver
    def nash_equilibrium(self, time_limit: float | None = DEFAULT_TIME_LIMIT) -> np.ndarray:
        """An exact Nash equilibrium by linear programming (scipy HiGHS).

        Solves ``max_{pi, v} v`` s.t. ``(pi^T A)_b >= v`` for all ``b``,
        ``pi in simplex``; the value is 0 for a skew-symmetric game.
        Batched games are solved one LP each.

        Parameters
        ----------
        time_limit
            Wall-clock seconds for the whole call (all games of a batch);
            ``None`` for no limit. The LP's cost grows roughly as ``n^3``:
            measured on 2 CPU cores it takes about 0.5 s at ``n = 400``, 2.4 s
            at ``n = 600``, 9 s at ``n = 800`` and 13 s at ``n = 1000`` actions.

        Raises
        ------
        SolverLimitError
            If the solver runs past ``time_limit``; the message gives the game's
            size and the sizes that fit.
        """
        limit = None if time_limit is None else check_positive_float(time_limit, "time_limit")
        start = time.perf_counter()
        flat = self.payoff.reshape(-1, self.n_actions, self.n_actions)
        sols = []
        for A in flat:
            left = None if limit is None else limit - (time.perf_counter() - start)
            if left is not None and left <= 0:
                raise _limit_error(self.n_actions, limit, len(flat))
            sols.append(_solve_lp(A, left, limit, len(flat)))
        if self.batch_shape:
            return np.stack(sols).reshape(*self.batch_shape, self.n_actions)
        return sols[0]


def _limit_error(n: int, limit: float, count: int) -> SolverLimitError:
    games = f" (a batch of {count} games)" if count > 1 else ""
    return SolverLimitError(
        f"nash_equilibrium ran past time_limit={limit:g} s on a game with n = {n} actions{games}; "
        f"{LP_SIZE_NOTE}. Pass a larger time_limit= (or None), or approximate the equilibrium with an "
        "iterative agent (e.g. prefgym.agents.OMWU or MPO)")


def _solve_lp(A: np.ndarray, time_limit: float | None = None, total_limit: float | None = None,
              count: int = 1) -> np.ndarray:
    from scipy.optimize import linprog  # imported when an LP is solved: it is slow to import

    n = A.shape[0]
    c = np.zeros(n + 1)
    c[-1] = -1.0  # maximise v
    A_ub = np.hstack([-A.T, np.ones((n, 1))])  # v - (pi^T A)_b <= 0
    A_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    bounds = [(0.0, None)] * n + [(None, None)]
    options = {} if time_limit is None else {"time_limit": float(time_limit)}
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A_eq, b_eq=[1.0], bounds=bounds, method="highs",
                  options=options)
    if res.status == 1 and time_limit is not None:  # iteration or time limit reached
        raise _limit_error(n, total_limit if total_limit is not None else time_limit, count)
    if res.status != 0:  # pragma: no cover - HiGHS solves every finite matrix game
        raise RuntimeError(f"LP for the Nash equilibrium failed: {res.message}")
    pi = np.clip(res.x[:n], 0.0, None)
    return pi / pi.sum()


def _action_array(x, name: str, n: int) -> np.ndarray:
    """An integer array of actions in ``0 .. n - 1``."""
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any() or (arr >= n).any():
        raise InvalidArgumentError(f"{name} must be an integer action (or array of them) in 0..{n - 1}; "
                                   f"got {x!r:.80}")
    return arr


# --------------------------------------------------------------- generators
def _rng(seed) -> np.random.Generator:
    return check_rng(seed)


def _shape(batch: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if batch is None:
        return ()
    if isinstance(batch, int | np.integer) and not isinstance(batch, bool):
        return (check_positive_int(batch, "batch"),)
    if not isinstance(batch, tuple | list):
        raise InvalidTypeError(f"batch must be None, a positive int or a tuple of them; got {batch!r:.60}")
    return tuple(check_positive_int(b, "batch") for b in batch)


#: largest ``batch * n * n`` a generator builds (512 MiB of float64); beyond it NumPy
#: would fail with a MemoryError or swap for minutes
MAX_GAME_ENTRIES = 2**26


def _n_actions(n, minimum: int = 1, batch: tuple[int, ...] = ()) -> int:
    n = check_int(n, "n", minimum=minimum)
    size = n * n * int(np.prod(batch, dtype=object))
    if size > MAX_GAME_ENTRIES:
        raise InvalidArgumentError(f"a batch {batch} of games with n = {n} actions has {size} preference "
                                   f"entries, more than the limit of {MAX_GAME_ENTRIES} (2**26, 512 MiB)")
    return n


def rps() -> MatrixGame:
    """Rock-paper-scissors: NE uniform, value 1/2 in preference terms."""
    return MatrixGame(Cyclic(3, 1.0))


def cyclic(n: int = 3, strength: float = 1.0) -> MatrixGame:
    """The cyclic (generalised RPS) game of :class:`~prefgym.preferences.Cyclic`."""
    return MatrixGame(Cyclic(n, strength))


def random_skew_symmetric(n: int, seed=None, batch: int | tuple[int, ...] | None = None) -> MatrixGame:
    """``P = sigmoid(G - G^T)`` with ``G`` i.i.d. standard normal."""
    n = _n_actions(n, batch=_shape(batch))
    G = _rng(seed).standard_normal((*_shape(batch), n, n))
    return MatrixGame(expit(G - np.swapaxes(G, -1, -2)))


def transitive(
    n: int, seed=None, temperature: float = 1.0, batch: int | tuple[int, ...] | None = None
) -> MatrixGame:
    """Bradley-Terry game on i.i.d. normal rewards: the NE is the Condorcet winner."""
    n = _n_actions(n, batch=_shape(batch))
    temperature = check_positive_float(temperature, "temperature")
    r = _rng(seed).standard_normal((*_shape(batch), n))
    if not _shape(batch):
        return MatrixGame(BradleyTerry(r, temperature))
    return MatrixGame(expit((r[..., :, None] - r[..., None, :]) / temperature))


def planted_nash(
    n: int,
    rank: int = 1,
    seed=None,
    batch: int | tuple[int, ...] | None = None,
    return_planted: bool = False,
) -> MatrixGame | tuple[MatrixGame, np.ndarray]:
    """002 Algorithm 1: a game whose NE polytope contains ``rank`` planted policies.

    Reconstruction (the seed text lost the symbols of Sec. 5.1 / App. D.1):

    1. draw ``rank`` full-support policies ``pi_1..pi_r ~ Dirichlet(1)``;
    2. ``Q`` = orthonormal basis of their orthogonal complement (``n x (n-r)``);
    3. ``S = G - G^T`` with ``G`` standard normal of size ``(n-r) x (n-r)``;
    4. ``A = Q S Q^T``, scaled so that ``max |A_ij| = 1/2`` ("normalise so that
       ``1/2 + A`` is nonnegative"); ``P = 1/2 + A``.

    Then ``A pi_i = 0`` for every planted policy, so each is a full-support NE
    (Assumption 1 of 002 holds), and ``rank(A) in {n-r, n-r-1}``. The Dirichlet
    choice is ours; the paper does not say how the policies are drawn.
    With ``return_planted=True`` the planted policies ``(*batch, rank, n)`` are
    returned too.
    """
    n = _n_actions(n, minimum=2, batch=_shape(batch))
    rank = check_int(rank, "rank")
    if not 1 <= rank < n:
        raise InvalidArgumentError(f"rank must satisfy 1 <= rank < n = {n}; got {rank}")
    rng = _rng(seed)
    shape = _shape(batch)
    count = int(np.prod(shape)) if shape else 1
    from scipy.linalg import null_space  # imported on use: scipy.linalg is slow to import

    mats = np.empty((count, n, n))
    planted = np.empty((count, rank, n))
    for k in range(count):  # one null-space basis per game (an SVD each)
        pis = planted[k] = rng.dirichlet(np.ones(n), size=rank)  # (r, n)
        Q = null_space(pis)  # (n, n - r)
        G = rng.standard_normal((n - rank, n - rank))
        A = Q @ (G - G.T) @ Q.T
        scale = np.abs(A).max()
        mats[k] = 0.5 * A / scale if scale > 0 else 0.0  # n - rank = 1: every pair ties
    P = 0.5 + mats.reshape(*shape, n, n) if shape else 0.5 + mats[0]
    game = MatrixGame(P)
    if return_planted:
        return game, planted.reshape(*shape, rank, n) if shape else planted[0]
    return game


GENERATORS = {
    "rps": lambda **kw: rps(),
    "cyclic": cyclic,
    "random": random_skew_symmetric,
    "transitive": transitive,
    "planted": planted_nash,
}


def make_game(name: str, **kwargs) -> MatrixGame:
    """Build a game by generator name (see :data:`GENERATORS`)."""
    if not isinstance(name, str) or name not in GENERATORS:
        raise InvalidArgumentError(f"unknown game generator {name!r}; choose from {sorted(GENERATORS)}")
    try:
        return GENERATORS[name](**kwargs)
    except InvalidTypeError:
        raise
    except TypeError as exc:  # an unexpected keyword argument
        raise InvalidArgumentError(f"game generator {name!r}: {exc}") from None
