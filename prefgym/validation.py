"""Argument checks shared by every public constructor and function.

Each check returns the value in its canonical form (``int``, ``float``, a
float64 array) or raises one of :mod:`prefgym.errors`' types whose message
names the argument, the value it got and what is allowed:

- a value of the wrong *type* (a string for a number, a bool for a seed, a
  complex array) raises :class:`~prefgym.errors.InvalidTypeError`;
- a value of the right type outside the allowed range raises
  :class:`~prefgym.errors.InvalidArgumentError`, or one of its subclasses
  :class:`~prefgym.errors.InvalidPolicyError` (probability vectors) and
  :class:`~prefgym.errors.InvalidGameError` (preference matrices).

>>> check_seed(3)
3
>>> check_positive_float(0.5, "learning_rate")
0.5
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from prefgym.errors import (
    InvalidActionError,
    InvalidArgumentError,
    InvalidGameError,
    InvalidPolicyError,
    InvalidTypeError,
)

__all__ = [
    "MAX_SEED",
    "STEP_AFTER_END",
    "STEP_BEFORE_RESET",
    "check_action",
    "check_box_action",
    "check_choice",
    "check_discrete_action",
    "check_parallel_actions",
    "check_finite_array",
    "check_float",
    "check_int",
    "check_nonnegative_float",
    "check_positive_float",
    "check_positive_int",
    "check_preference_matrix",
    "check_probability",
    "check_probability_vector",
    "check_real_array",
    "check_rng",
    "check_seed",
]

#: seeds are non-negative integers below 2**128 (NumPy's SeedSequence takes any
#: non-negative int; we bound it so a seed round-trips through JSON and SB3)
MAX_SEED = 2**128 - 1


def _show(value, limit: int = 60) -> str:
    """A short ``repr`` of ``value`` for an error message."""
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"array of shape {value.shape}, dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_real_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _to_float(value, name: str) -> float:
    """``float(value)`` for a real number; an int too big for a float is an error, not an OverflowError."""
    try:
        return float(value)
    except OverflowError:
        raise InvalidArgumentError(f"{name} = {_show(value)} is too large for a float") from None


# ------------------------------------------------------------------- scalars
def check_seed(seed, name: str = "seed") -> int | None:
    """A seed: ``None`` or an integer in ``[0, 2**128)`` (bools, floats and strings are refused)."""
    if seed is None:
        return None
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, numbers.Integral):
        raise InvalidTypeError(f"{name} must be a non-negative integer or None; got {_show(seed)} "
                               f"({type(seed).__name__})")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidArgumentError(f"{name} must be a non-negative integer below 2**128 or None; got {seed}")
    return seed


def check_rng(seed, name: str = "seed") -> np.random.Generator:
    """A NumPy Generator from a seed (checked by :func:`check_seed`) or a Generator passed through."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed, name))


def check_float(value, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, allow_inf: bool = False) -> float:
    """A real number (not a bool, not a string), finite unless ``allow_inf``, within the bounds given."""
    if not _is_real_number(value):
        raise InvalidTypeError(f"{name} must be a real number; got {_show(value)} ({type(value).__name__})")
    x = _to_float(value, name)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    allowed = "a finite number"
    if low is not None or high is not None:
        lo_text = "-inf" if low is None else f"{low:g}"
        hi_text = "inf" if high is None else f"{high:g}"
        allowed += f" in {lo}{lo_text}, {hi_text}{hi}"
    if np.isnan(x) or (np.isinf(x) and not allow_inf):
        raise InvalidArgumentError(f"{name} must be {allowed}; got {x}")
    if low is not None and (x < low or (low_open and x == low)):
        raise InvalidArgumentError(f"{name} must be {allowed}; got {x:g}")
    if high is not None and (x > high or (high_open and x == high)):
        raise InvalidArgumentError(f"{name} must be {allowed}; got {x:g}")
    return x


def check_positive_float(value, name: str) -> float:
    """A finite real number ``> 0``."""
    if not _is_real_number(value):
        raise InvalidTypeError(f"{name} must be a positive number; got {_show(value)} "
                               f"({type(value).__name__})")
    x = _to_float(value, name)
    if not (np.isfinite(x) and x > 0):
        raise InvalidArgumentError(f"{name} must be a positive number (finite, > 0); got {x}")
    return x


def check_nonnegative_float(value, name: str) -> float:
    """A finite real number ``>= 0``."""
    return check_float(value, name, low=0.0)


def check_probability(value, name: str) -> float:
    """A real number in ``[0, 1]``."""
    return check_float(value, name, low=0.0, high=1.0)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (an integral float such as ``3.0`` is accepted; bools and strings are not)."""
    if isinstance(value, bool | np.bool_):
        raise InvalidTypeError(f"{name} must be an integer; got {value!r} (bool)")
    if isinstance(value, numbers.Integral):
        x = int(value)
    elif isinstance(value, numbers.Real) and np.isfinite(_to_float(value, name)) \
            and float(value).is_integer():
        x = int(value)
    elif isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"{name} must be an integer; got {value!r}")
    else:
        raise InvalidTypeError(f"{name} must be an integer; got {_show(value)} ({type(value).__name__})")
    if minimum is not None and x < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}; got {x}")
    if maximum is not None and x > maximum:
        raise InvalidArgumentError(f"{name} must be an integer <= {maximum}; got {x}")
    return x


def check_positive_int(value, name: str) -> int:
    """An integer ``>= 1``."""
    return check_int(value, name, minimum=1)


def check_choice(value, name: str, choices: Iterable):
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    try:
        ok = value in choices
    except TypeError:  # unhashable or incomparable
        ok = False
    if not ok:
        raise InvalidArgumentError(f"{name} must be one of {choices}; got {_show(value)}")
    return value


# -------------------------------------------------------------------- arrays
def check_real_array(value, name: str,
                     error: type[InvalidArgumentError] = InvalidArgumentError) -> np.ndarray:
    """``value`` as a float64 array; complex, string, object and ragged inputs are refused.

    A complex or non-numeric dtype raises :class:`InvalidTypeError`; a ragged
    nesting raises ``error``.
    """
    if isinstance(value, str | bytes):
        raise InvalidTypeError(f"{name} must be an array of real numbers; got a string {_show(value)}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise error(f"{name} must be a rectangular array of real numbers; got {_show(value)} "
                    f"({exc})") from None
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError):
            raise InvalidTypeError(f"{name} must be an array of real numbers; got {_show(value)}") from None
    if np.iscomplexobj(arr):
        raise InvalidTypeError(f"{name} must be real; got a {arr.dtype} array (complex values are not "
                               "silently truncated)")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidTypeError(f"{name} must be an array of real numbers; got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def check_finite_array(value, name: str,
                       error: type[InvalidArgumentError] = InvalidArgumentError) -> np.ndarray:
    """A real float64 array without NaN or inf."""
    arr = check_real_array(value, name, error)
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(arr[idx]) else "inf"
        raise error(f"{name} has {kind} at entry {idx}; every entry must be a finite number")
    return arr


def check_probability_vector(pi, n: int, name: str = "policy", atol: float = 1e-6,
                             batch_shape: tuple[int, ...] | None = None,
                             renormalize: bool = True) -> np.ndarray:
    """A (batch of) probability vector(s) over ``n`` actions, renormalised to sum exactly to 1.

    With ``renormalize=False`` the checked values are returned as given (float64).

    Real, finite, entries ``>= -atol``, last axis of length ``n`` summing to 1
    within ``atol``; with ``batch_shape`` the leading axes must broadcast to it.
    Every failure raises :class:`~prefgym.errors.InvalidPolicyError`
    (:class:`~prefgym.errors.InvalidTypeError` for a non-real dtype).
    """
    p = check_finite_array(pi, name, InvalidPolicyError)
    if p.ndim == 0 or p.shape[-1] != n:
        raise InvalidPolicyError(f"{name} must have last dimension {n} (a probability vector over {n} "
                                 f"actions); got shape {p.shape}")
    if batch_shape is not None:
        try:
            np.broadcast_shapes(p.shape[:-1], tuple(batch_shape))
        except ValueError:
            raise InvalidPolicyError(f"{name} must have shape (n,) or (*{tuple(batch_shape)}, n) with "
                                     f"n = {n}; got {p.shape}") from None
    neg = p < -atol
    if neg.any():
        idx = tuple(int(i) for i in np.argwhere(neg)[0])
        raise InvalidPolicyError(f"{name} has a negative probability {p[idx]:.6g} at {idx}; "
                                 "probabilities must be >= 0")
    s = p.sum(axis=-1)
    off = np.abs(s - 1.0) > atol
    if np.any(off):
        idx = tuple(int(i) for i in np.argwhere(np.atleast_1d(off))[0]) if p.ndim > 1 else ()
        got = float(np.atleast_1d(s)[idx] if idx else s)
        where = f" at batch index {idx}" if idx else ""
        raise InvalidPolicyError(f"{name} must sum to 1 over its last axis (atol={atol:g}); it sums to "
                                 f"{got:.6g}{where}")
    if not renormalize:
        return p
    q = np.clip(p, 0.0, None)
    return q / q.sum(axis=-1, keepdims=True)


def check_preference_matrix(matrix, atol: float = 1e-8, name: str = "preference matrix") -> np.ndarray:
    """A (batch of) preference matrix(es) ``P[..., a, b] = P(a beats b)`` as float64.

    Real (a complex matrix is an error, not a warning), square ``(..., n, n)``
    with ``n >= 1``, finite, entries in ``[0, 1]``, diagonal ``1/2`` and
    ``P + P^T = 1`` within ``atol``. Failures raise
    :class:`~prefgym.errors.InvalidGameError` naming the first offending entry
    (:class:`~prefgym.errors.InvalidTypeError` for a non-real dtype).
    """
    atol = check_nonnegative_float(atol, "atol")
    P = check_real_array(matrix, name, InvalidGameError)
    if P.ndim < 2 or P.shape[-1] != P.shape[-2]:
        raise InvalidGameError(f"{name} must be square (..., n, n); got shape {P.shape}")
    if P.shape[-1] == 0:
        raise InvalidGameError(f"{name} must have at least one item; got shape {P.shape}")
    if P.size == 0:
        raise InvalidGameError(f"{name} batch is empty; got shape {P.shape}")
    batch = P.shape[:-2]

    def where(mask: np.ndarray) -> tuple[tuple[int, ...], str]:
        idx = tuple(int(i) for i in np.argwhere(mask)[0])
        lead = f"game {idx[:-2]} " if batch else ""
        return idx, f"{lead}entry P[{idx[-2]}, {idx[-1]}]"

    bad = ~np.isfinite(P)
    if bad.any():
        idx, at = where(bad)
        kind = "NaN" if np.isnan(P[idx]) else "inf"
        raise InvalidGameError(f"{name} has {kind} at {at}; entries must be finite numbers in [0, 1]")
    out = (P < -atol) | (P > 1 + atol)
    if out.any():
        idx, at = where(out)
        raise InvalidGameError(f"{name} {at} = {P[idx]:.6g} lies outside [0, 1]")
    diag = np.abs(np.diagonal(P, axis1=-2, axis2=-1) - 0.5) > atol
    if diag.any():
        k = tuple(int(i) for i in np.argwhere(diag)[0])
        lead = f"game {k[:-1]} " if batch else ""
        raise InvalidGameError(f"{name} {lead}diagonal entry P[{k[-1]}, {k[-1]}] = "
                               f"{P[k[:-1] + (k[-1], k[-1])]:.6g} must be 1/2")
    asym = np.abs(P + np.swapaxes(P, -1, -2) - 1.0) > atol
    if asym.any():
        idx, at = where(asym)
        j = idx[:-2] + (idx[-1], idx[-2])
        raise InvalidGameError(f"{name} {at} + P[{idx[-1]}, {idx[-2]}] = {P[idx] + P[j]:.6g} != 1 "
                               f"(a constant-sum preference needs P + P.T = 1, atol={atol:g})")
    return np.clip(P, 0.0, 1.0)


# ------------------------------------------------------------------- actions
#: what every env says when it is stepped after ``terminated`` or ``truncated``
STEP_AFTER_END = ("episode is over: step() called after the episode ended (terminated or truncated); "
                  "call reset() to start a new episode")
#: what every env says when it is stepped before its first ``reset()``
STEP_BEFORE_RESET = "step() called before reset(); call reset() first"


def check_discrete_action(action, n: int, name: str = "action") -> int:
    """``action`` as an ``int`` in ``[0, n)``: one integer (a NumPy integer or a 1-element integer array)."""
    try:
        arr = np.asarray(action)
    except (ValueError, TypeError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "iu" or arr.size != 1:
        raise InvalidActionError(
            f"invalid {name} {_show(action)} (type {type(action).__name__}); "
            f"expected one integer in [0, {n})"
        )
    a = int(arr.reshape(-1)[0])
    if not 0 <= a < n:
        raise InvalidActionError(f"{name} {a} is out of range; valid actions are integers in [0, {n})")
    return a


def check_box_action(action, space, name: str = "action", rtol: float = 1e-6):
    """Check a continuous action against a Gymnasium ``Box``; return it unchanged.

    The action must be numeric, of the space's shape, finite (NaN or inf are
    refused rather than passed to a simulator) and within the bounds up to
    ``rtol * (1 + |bound|)`` (float32 rounding of a clipped action is allowed).
    """
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (ValueError, TypeError):
        raise InvalidActionError(f"invalid {name} {_show(action)} (type {type(action).__name__}); expected "
                                 f"a real array of shape {space.shape}") from None
    if arr.shape != tuple(space.shape):
        raise InvalidActionError(f"{name} has shape {arr.shape}; the action space {space} needs shape "
                                 f"{tuple(space.shape)}")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidActionError(f"{name} has {arr[idx]} at index {idx}; actions must be finite numbers "
                                 f"in the action space {space}")
    low = np.asarray(space.low, np.float64)
    high = np.asarray(space.high, np.float64)
    with np.errstate(invalid="ignore"):
        out = (arr < low - rtol * (1 + np.abs(low))) | (arr > high + rtol * (1 + np.abs(high)))
    if out.any():
        idx = tuple(int(i) for i in np.argwhere(out)[0])
        lo, hi = np.broadcast_to(low, arr.shape)[idx], np.broadcast_to(high, arr.shape)[idx]
        raise InvalidActionError(f"{name}[{', '.join(map(str, idx))}] = {arr[idx]:.6g} lies outside the "
                                 f"action space's bounds [{lo:g}, {hi:g}]")
    return action


def check_action(action, space, name: str = "action"):
    """Check ``action`` against a Gymnasium space (Discrete and Box in detail, others by ``contains``)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        a = check_discrete_action(int(action) if isinstance(action, np.integer) else action,
                                  int(space.n) + int(space.start), name)
        if a < int(space.start):
            raise InvalidActionError(f"{name} {a} is out of range; valid actions are integers in "
                                     f"[{int(space.start)}, {int(space.start) + int(space.n)})")
        return action
    if isinstance(space, spaces.Box):
        return check_box_action(action, space, name)
    try:
        ok = space.contains(action)
    except Exception:  # noqa: BLE001 - a malformed action may break contains() in any way
        ok = False
    if not ok:
        raise InvalidActionError(f"{name} {_show(action)} is not in the action space {space}")
    return action


def check_parallel_actions(actions, agents: list[str]) -> None:
    """A PettingZoo parallel step: the episode is live and ``actions`` has one entry per live agent."""
    if not agents:
        raise InvalidActionError("episode is over (or never began): step() called after the episode "
                                 "ended or before reset(); call reset()")
    if not isinstance(actions, dict) or set(actions) != set(agents):
        got = sorted(map(str, actions)) if isinstance(actions, dict) else type(actions).__name__
        raise InvalidActionError(f"actions needed for exactly {agents}; got {got}")
