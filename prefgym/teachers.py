"""Synthetic preference teachers over true segment rewards (B-Pref, Lee et al. 2021).

A teacher compares two trajectory segments ``a`` and ``b`` by their true
per-step rewards and answers with a label ``y = P(a preferred to b)``:

- ``1.0``: ``a`` is preferred, ``0.0``: ``b`` is preferred,
- ``0.5``: "equally preferable" (the equal teacher),
- ``nan``: the query is skipped (the skip teacher gives no label).

:class:`SyntheticTeacher` combines the five noise models of B-Pref, each a
parameter, applied in B-Pref's order (``get_label`` of its ``reward_model.py``):

1. **skip**: no label when ``max(R_a, R_b) <= skip_threshold``
   (``R`` the undiscounted segment return: neither segment shows the task);
2. **myopic**: the utility ``U = sum_t gamma^(n - 1 - t) r_t`` over the
   segment's ``n`` steps weights *later* steps more (``gamma = 1``: ``U = R``);
3. **stochastic**: Bradley-Terry ``P(a > b) = sigmoid((U_a - U_b) / temperature)``;
   ``temperature = 0`` is the perfectly rational oracle (``1[U_a > U_b]``,
   ``1/2`` on exact ties); B-Pref's rationality is ``beta = 1 / temperature``;
4. **mistake**: the drawn label is flipped with probability ``eps_mistake``;
5. **equal**: label ``1/2`` when ``|R_a - R_b| < equal_threshold``
   (overrides 3-4, as in B-Pref).

:data:`TEACHERS` and :func:`make_teacher` give B-Pref's named teachers
(oracle, stochastic, myopic, mistake, skip, equal); skip and equal thresholds
are fractions of a ``margin``, the mean true return of a segment, as in B-Pref.

Pure NumPy: no environment needed.

>>> teacher = SyntheticTeacher(temperature=1.0, eps_mistake=0.1)
>>> rng = np.random.default_rng(0)
>>> labels = teacher.label(np.ones((5, 10)), np.zeros((5, 10)), rng)   # 5 queries, segments of 10 steps
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from prefgym.errors import InvalidArgumentError, InvalidTypeError
from prefgym.validation import check_float, check_nonnegative_float, check_probability, check_real_array

__all__ = ["SyntheticTeacher", "TEACHERS", "make_teacher", "as_teacher"]


def _prepare(rewards, mask) -> tuple[np.ndarray, np.ndarray]:
    r = check_real_array(rewards, "segment rewards")
    if r.ndim == 0:
        raise InvalidArgumentError("segment rewards must have a time axis (..., L); got a scalar")
    if mask is None:
        m = np.ones(r.shape, dtype=bool)
    else:
        m = np.asarray(mask, dtype=bool)
        if m.shape != r.shape:
            raise InvalidArgumentError(f"mask shape {m.shape} differs from rewards shape {r.shape}")
    if not np.isfinite(r[m]).all():
        raise InvalidArgumentError("segment rewards contain NaN or inf at unmasked steps; rewards must be "
                                   "finite")
    return np.where(m, r, 0.0), m


@dataclass(frozen=True)
class SyntheticTeacher:
    """A scripted teacher with B-Pref's noise models (see the module docstring).

    Parameters
    ----------
    temperature
        Bradley-Terry temperature on the (myopic) utilities; ``0`` is the oracle.
    gamma
        Myopic discount in ``(0, 1]``: step ``t`` of an ``n``-step segment weighs ``gamma^(n-1-t)``.
    eps_mistake
        Probability of flipping the drawn label.
    skip_threshold
        Skip the query if ``max(R_a, R_b) <= skip_threshold``; ``None`` never skips.
    equal_threshold
        Label ``1/2`` if ``|R_a - R_b| < equal_threshold``; ``None`` never says equal.
    """

    temperature: float = 0.0
    gamma: float = 1.0
    eps_mistake: float = 0.0
    skip_threshold: float | None = None
    equal_threshold: float | None = None

    def __post_init__(self):
        check_nonnegative_float(self.temperature, "temperature")
        check_float(self.gamma, "gamma", low=0.0, high=1.0, low_open=True)
        check_probability(self.eps_mistake, "eps_mistake")
        if self.skip_threshold is not None:
            check_float(self.skip_threshold, "skip_threshold")
        if self.equal_threshold is not None:
            check_nonnegative_float(self.equal_threshold, "equal_threshold")

    # ------------------------------------------------------------ quantities
    @staticmethod
    def returns(rewards, mask=None) -> np.ndarray:
        """Undiscounted segment returns ``R = sum_t r_t`` over the last axis (masked steps excluded)."""
        r, _ = _prepare(rewards, mask)
        return r.sum(-1)

    def utilities(self, rewards, mask=None) -> np.ndarray:
        """Myopic utilities ``U = sum_t gamma^(n - 1 - t) r_t``, ``n`` the segment's valid length.

        Padding (``mask`` False) is assumed to come after the valid steps.
        """
        r, m = _prepare(rewards, mask)
        if self.gamma == 1.0:
            return r.sum(-1)
        n = m.sum(-1, keepdims=True)
        t = np.arange(r.shape[-1])
        w = np.where(m, self.gamma ** np.maximum(n - 1 - t, 0), 0.0)
        return (w * r).sum(-1)

    def _masks(self, rewards_a, rewards_b, mask_a, mask_b):
        ra = self.returns(rewards_a, mask_a)
        rb = self.returns(rewards_b, mask_b)
        ua = self.utilities(rewards_a, mask_a)
        ub = self.utilities(rewards_b, mask_b)
        try:
            ra, rb, ua, ub = np.broadcast_arrays(ra, rb, ua, ub)
        except ValueError:
            raise InvalidArgumentError(
                f"segments a and b must hold broadcastable batches of queries (..., L); got rewards of "
                f"shapes {np.shape(rewards_a)} and {np.shape(rewards_b)}") from None
        skip = (np.maximum(ra, rb) <= self.skip_threshold) if self.skip_threshold is not None \
            else np.zeros(ra.shape, bool)
        equal = (np.abs(ra - rb) < self.equal_threshold) if self.equal_threshold is not None \
            else np.zeros(ra.shape, bool)
        return ua, ub, skip, equal

    def rational_prob(self, utility_a, utility_b) -> np.ndarray:
        """Step 3 alone: ``sigmoid((U_a - U_b) / temperature)`` (or the oracle's ``1[U_a > U_b]``)."""
        d = np.asarray(utility_a, dtype=np.float64) - np.asarray(utility_b, dtype=np.float64)
        if self.temperature == 0:
            return np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
        return expit(d / self.temperature)

    def prob(self, rewards_a, rewards_b, mask_a=None, mask_b=None) -> np.ndarray:
        """Expected label ``E[y] = P(a preferred)``: ``nan`` where skipped, ``1/2`` where equal.

        Elsewhere ``(1 - eps) p + eps (1 - p)`` with ``p`` the Bradley-Terry probability
        of the myopic utilities.
        """
        ua, ub, skip, equal = self._masks(rewards_a, rewards_b, mask_a, mask_b)
        p = self.rational_prob(ua, ub)
        p = (1 - self.eps_mistake) * p + self.eps_mistake * (1 - p)
        p = np.where(equal, 0.5, p)
        return np.where(skip, np.nan, p)

    def label(self, rewards_a, rewards_b, rng: np.random.Generator, mask_a=None, mask_b=None) -> np.ndarray:
        """Draw labels for a batch of queries ``(..., L)`` -> ``(...)`` in ``{0, 1/2, 1, nan}``.

        A label is a Bernoulli draw of the Bradley-Terry probability (oracle: the
        better segment; exact ties give ``1/2``), flipped with probability
        ``eps_mistake``; then ``1/2`` where equal and ``nan`` where skipped.
        """
        ua, ub, skip, equal = self._masks(rewards_a, rewards_b, mask_a, mask_b)
        p = self.rational_prob(ua, ub)
        if self.temperature == 0:
            y = p.copy()  # deterministic: 1, 0, or 1/2 on exact ties
        else:
            y = (rng.random(p.shape) < p).astype(np.float64)
        if self.eps_mistake > 0:
            flip = rng.random(p.shape) < self.eps_mistake
            y = np.where(flip, 1.0 - y, y)
        y = np.where(equal, 0.5, y)
        return np.where(skip, np.nan, y)

    # ------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        """The constructor arguments, as a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SyntheticTeacher:
        return cls(**config)


#: B-Pref's named teachers: constructor arguments, with ``"eps_skip"`` / ``"eps_equal"``
#: the thresholds as fractions of the ``margin`` (mean true segment return).
TEACHERS: dict[str, dict[str, float]] = {
    "oracle": {},
    "stochastic": {"temperature": 1.0},
    "myopic": {"gamma": 0.9},
    "mistake": {"eps_mistake": 0.1},
    "skip": {"eps_skip": 0.1},
    "equal": {"eps_equal": 0.1},
}


def make_teacher(name: str = "oracle", margin: float | None = None, **overrides) -> SyntheticTeacher:
    """A B-Pref teacher by name; ``overrides`` replace its constructor arguments.

    Parameters
    ----------
    name
        One of :data:`TEACHERS`.
    margin
        The mean true return of a segment (B-Pref: mean episode return times
        ``segment_length / episode_length``); the skip and equal thresholds are
        ``eps_skip * |margin|`` and ``eps_equal * |margin|``. Needed by "skip" and "equal"
        unless a threshold is given in ``overrides``. B-Pref's tasks have positive
        rewards; where returns are negative (e.g. Pendulum) the relative skip threshold
        skips nearly every query, so give ``skip_threshold`` explicitly.
    """
    if not isinstance(name, str) or name not in TEACHERS:
        raise InvalidArgumentError(f"unknown teacher {name!r}; choose from {sorted(TEACHERS)}")
    kwargs: dict[str, Any] = dict(TEACHERS[name])
    for eps_key, key in (("eps_skip", "skip_threshold"), ("eps_equal", "equal_threshold")):
        eps = kwargs.pop(eps_key, None)
        if eps is not None and key not in overrides:
            if margin is None:
                raise InvalidArgumentError(f"the {name!r} teacher needs margin= (mean true segment return) "
                                 f"or {key}=")
            kwargs[key] = eps * abs(check_float(margin, "margin"))
    kwargs.update(overrides)
    return _build(kwargs)


def _build(kwargs: dict[str, Any]) -> SyntheticTeacher:
    unknown = sorted(set(kwargs) - set(SyntheticTeacher.__dataclass_fields__))
    if unknown:
        raise InvalidArgumentError(f"unknown teacher arguments {unknown}; allowed are "
                                   f"{sorted(SyntheticTeacher.__dataclass_fields__)}")
    return SyntheticTeacher(**kwargs)


def as_teacher(spec: SyntheticTeacher | str | dict | None, default: str = "oracle",
               margin: float | None = None) -> SyntheticTeacher:
    """A teacher from an instance, a :data:`TEACHERS` name, a constructor dict, or None (``default``)."""
    if spec is None:
        return make_teacher(default, margin=margin)
    if isinstance(spec, SyntheticTeacher):
        return spec
    if isinstance(spec, str):
        return make_teacher(spec, margin=margin)
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        return make_teacher(name, margin=margin, **spec) if name else _build(spec)
    raise InvalidTypeError("teacher must be a SyntheticTeacher, a name, a dict or None; "
                           f"got {type(spec).__name__}")
