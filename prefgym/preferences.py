"""Pairwise preference models: ``P(a beats b)`` for a finite set of items.

Every game in prefgym is built on a :class:`PreferenceModel`. A model over ``n``
items answers ``prob(a, b)`` (batched by NumPy broadcasting), exposes its full
``n x n`` matrix, and satisfies the constant-sum identities

    P(a > b) + P(b > a) = 1,        P(a > a) = 1/2.

Oracles
-------
- :class:`TabularPreference`: any valid matrix (validated, with errors that name
  the offending entry).
- :class:`BradleyTerry`: ``P(a > b) = sigmoid((r_a - r_b) / temperature)``.
- :class:`Thurstone`: ``P(a > b) = Phi((mu_a - mu_b) / (sqrt(2) * scale))``.
- :class:`Cyclic`: rock-paper-scissors families (each item beats the next
  ``(n - 1) // 2`` items around a circle).
- :class:`PopulationMixture`: a weighted population of raters; a mixture of
  transitive raters can be non-transitive in aggregate (Condorcet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.special import expit, ndtr

from prefgym.errors import InvalidArgumentError, InvalidGameError, InvalidTypeError
from prefgym.validation import (
    check_finite_array,
    check_float,
    check_int,
    check_positive_float,
    check_preference_matrix,
    check_probability_vector,
)

__all__ = [
    "PreferenceModel",
    "TabularPreference",
    "BradleyTerry",
    "Thurstone",
    "Cyclic",
    "PopulationMixture",
    "validate_preference_matrix",
    "as_preference",
]

DEFAULT_ATOL = 1e-8


def validate_preference_matrix(matrix: np.ndarray, atol: float = DEFAULT_ATOL) -> np.ndarray:
    """Check that ``matrix`` is a valid preference matrix and return it as float64.

    Raises
    ------
    InvalidGameError
        Naming the first offending entry: not square, NaN or inf, outside
        ``[0, 1]``, ``P[i, j] + P[j, i] != 1`` beyond ``atol``, or a diagonal
        entry ``!= 1/2``.
    InvalidTypeError
        For a complex, string or object matrix.
    """
    return check_preference_matrix(matrix, atol)


@runtime_checkable
class PreferenceModel(Protocol):
    """What every preference oracle provides."""

    n_items: int

    def prob(self, a, b) -> np.ndarray:
        """``P(a beats b)`` for integer item arrays ``a`` and ``b`` (broadcast)."""
        ...

    def matrix(self) -> np.ndarray:
        """The ``(n, n)`` matrix ``P[a, b] = P(a beats b)``."""
        ...


class _MatrixBacked:
    """Shared behaviour of models that can materialise their matrix."""

    _P: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self._P.shape[-1])

    def matrix(self) -> np.ndarray:
        return self._P.copy()

    def _check_items(self, x) -> np.ndarray:
        try:
            x = np.asarray(x)
        except (ValueError, TypeError):
            raise InvalidArgumentError(f"items must be integers in [0, {self.n_items}); "
                                       f"got {x!r:.60}") from None
        if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
            if (np.issubdtype(x.dtype, np.floating) and np.all(np.isfinite(x))
                    and np.all(np.mod(x, 1) == 0)):
                x = x.astype(np.int64)
            else:
                raise InvalidArgumentError(f"items must be integers in [0, {self.n_items}); got {x!r:.60}")
        bad = (x < 0) | (x >= self.n_items)
        if np.any(bad):
            v = x[bad].flat[0] if x.ndim else int(x)
            raise InvalidArgumentError(f"item {v} out of range [0, {self.n_items})")
        return x

    def prob(self, a, b) -> np.ndarray:
        """``P(a beats b)``, broadcasting integer arrays ``a`` and ``b``."""
        return self._P[self._check_items(a), self._check_items(b)]

    def win_rate(self, pi: np.ndarray, rho: np.ndarray) -> np.ndarray:
        """``P(pi > rho) = pi^T P rho`` for (batched) mixed strategies."""
        pi = check_probability_vector(pi, self.n_items, "pi")
        rho = check_probability_vector(rho, self.n_items, "rho")
        return np.einsum("...i,ij,...j->...", pi, self._P, rho)

    def sample(self, a, b, rng: np.random.Generator) -> np.ndarray:
        """A Bernoulli draw of the outcome "a beats b" (1.0 or 0.0)."""
        p = self.prob(a, b)
        return (rng.random(np.shape(p)) < p).astype(np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_items={self.n_items})"


class TabularPreference(_MatrixBacked):
    """A preference given as an explicit matrix, validated on construction.

    Examples
    --------
    >>> P = TabularPreference([[0.5, 0.8], [0.2, 0.5]])
    >>> float(P.prob(0, 1))
    0.8
    """

    def __init__(self, matrix, atol: float = DEFAULT_ATOL):
        P = validate_preference_matrix(matrix, atol)
        if P.ndim != 2:
            raise InvalidGameError(f"TabularPreference takes one (n, n) matrix; got shape {P.shape}")
        self._P = P


class BradleyTerry(_MatrixBacked):
    """Bradley-Terry preference from scalar rewards: ``sigmoid((r_a - r_b) / T)``."""

    def __init__(self, rewards: Sequence[float] | np.ndarray, temperature: float = 1.0):
        r = check_finite_array(rewards, "rewards", InvalidGameError)
        if r.ndim != 1 or r.size == 0:
            raise InvalidGameError(f"rewards must be a non-empty 1-D array; got shape {r.shape}")
        temperature = check_positive_float(temperature, "temperature")
        self.rewards, self.temperature = r, temperature
        self._P = expit((r[:, None] - r[None, :]) / temperature)


class Thurstone(_MatrixBacked):
    """Thurstone (case V) preference: ``Phi((mu_a - mu_b) / (sqrt(2) * scale))``."""

    def __init__(self, means: Sequence[float] | np.ndarray, scale: float = 1.0):
        mu = check_finite_array(means, "means", InvalidGameError)
        if mu.ndim != 1 or mu.size == 0:
            raise InvalidGameError(f"means must be a non-empty 1-D array; got shape {mu.shape}")
        scale = check_positive_float(scale, "scale")
        self.means, self.scale = mu, scale
        self._P = ndtr((mu[:, None] - mu[None, :]) / (np.sqrt(2.0) * scale))


class Cyclic(_MatrixBacked):
    """Rock-paper-scissors family over ``n`` items arranged on a circle.

    Item ``i`` beats items ``i+1, ..., i+(n-1)//2`` (mod n) with probability
    ``(1 + strength) / 2``. For even ``n`` the item opposite ``i`` ties.
    ``Cyclic(3, strength=1.0)`` is rock-paper-scissors with 0 = rock beating
    1 = scissors beating 2 = paper; its unique Nash equilibrium is uniform.
    """

    def __init__(self, n: int = 3, strength: float = 1.0):
        n = check_int(n, "n", minimum=2, maximum=8192)  # an n x n matrix of at most 512 MiB
        strength = check_float(strength, "strength", low=0.0, high=1.0, low_open=True)
        d = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n  # clockwise distance i -> j
        half = (n - 1) // 2
        sign = np.where((d >= 1) & (d <= half), 1.0, 0.0) - np.where(d >= n - half, 1.0, 0.0)
        self.strength = float(strength)
        self._P = 0.5 + 0.5 * strength * sign


class PopulationMixture(_MatrixBacked):
    """A population of raters: ``P = sum_k w_k P_k``.

    Each rater may be transitive (e.g. Bradley-Terry on its own reward); the
    aggregate need not be, which is the case NLHF is built for.
    """

    def __init__(self, raters: Sequence[PreferenceModel], weights: Sequence[float] | None = None):
        raters = list(raters)
        if len(raters) == 0:
            raise InvalidGameError("a population needs at least one rater; got raters=[]")
        for k, r in enumerate(raters):
            if not (isinstance(r, PreferenceModel) and not isinstance(r, np.ndarray)):
                raise InvalidTypeError(f"raters[{k}] must be a PreferenceModel; got {type(r).__name__}")
        mats = [validate_preference_matrix(r.matrix()) for r in raters]
        if len({m.shape for m in mats}) != 1:
            raise InvalidGameError(f"all raters must rank the same number of items; got matrices of "
                                   f"shapes {sorted({m.shape for m in mats})}")
        mats = np.stack(mats)
        if weights is None:
            w = np.full(len(raters), 1.0 / len(raters))
        else:
            w = check_finite_array(weights, "weights")
            if w.shape != (len(raters),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
                raise InvalidArgumentError(f"weights must be {len(raters)} non-negative numbers summing "
                                           f"to 1; got {w}")
        self.raters, self.weights = list(raters), w
        self._P = validate_preference_matrix(np.einsum("k,kij->ij", w, mats))

    @classmethod
    def from_features(
        cls,
        features: np.ndarray,
        rater_weights: np.ndarray,
        population: Sequence[float] | None = None,
        temperature: float = 1.0,
    ) -> PopulationMixture:
        """Raters that each value different features of an item.

        ``features`` is ``(n_items, d)``; ``rater_weights`` is ``(n_raters, d)``;
        rater ``k`` is Bradley-Terry on reward ``features @ rater_weights[k]``.
        """
        F = check_finite_array(features, "features", InvalidGameError)
        W = np.atleast_2d(check_finite_array(rater_weights, "rater_weights", InvalidGameError))
        if F.ndim != 2 or W.ndim != 2 or W.shape[1] != F.shape[1]:
            raise InvalidGameError(
                f"features (n, d) and rater_weights (k, d) must share d; got {F.shape} and {W.shape}"
            )
        return cls([BradleyTerry(F @ w, temperature) for w in W], population)

    @classmethod
    def condorcet(cls, temperature: float = 0.05) -> PopulationMixture:
        """Three raters with rankings A>B>C, B>C>A, C>A>B: cyclic in aggregate."""
        ranks = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]])
        return cls([BradleyTerry(r, temperature) for r in ranks])


def as_preference(obj) -> PreferenceModel:
    """Wrap a matrix-like in :class:`TabularPreference`; pass models through."""
    if isinstance(obj, PreferenceModel) and not isinstance(obj, np.ndarray):
        return obj
    return TabularPreference(obj)
