"""Per-step preferences ``r_h(s, a, s', a') = P([s, a] > [s', a'])`` of a Markov game.

001 (Sec. 2.2) scores the two players at every step ``h`` by a preference
between their state-action pairs, with ``r(s,a,s',a') + r(s',a',s,a) = 1``.
As for matrix games, prefgym works with the skew part ``r - 1/2``; a step
preference answers ``apply(d)``: for occupancies ``d[..., h, s', a']`` the
expected skew payoff ``sum_{s',a'} (r_h - 1/2)(s, a, s', a') d[..., h, s', a']``.

- :class:`DenseStepPreference`: any tensor ``(S, A, S, A)`` or ``(H, S, A, S, A)``.
- :class:`FeatureStepPreference`: ``r = 1/2 + phi(s,a)^T Omega phi(s',a')`` with a
  skew-symmetric ``Omega`` over ``k`` features (goal colours, correctness of a
  step, ...): ``O(S A k)`` per application instead of ``O((S A)^2)``.
"""

from __future__ import annotations

import numpy as np

from prefgym.errors import InvalidGameError
from prefgym.validation import check_finite_array, check_real_array

__all__ = ["StepPreference", "DenseStepPreference", "FeatureStepPreference"]

ATOL = 1e-8


class StepPreference:
    """Interface shared by the step-preference representations."""

    n_states: int
    n_actions: int

    def apply(self, d: np.ndarray) -> np.ndarray:
        """``sum_{s',a'} (r_h - 1/2)(s,a,s',a') d[..., h, s', a']`` -> ``(..., H, S, A)``."""
        raise NotImplementedError

    def prob(self, h, s, a, s2, a2) -> np.ndarray:
        """``r_h(s, a, s2, a2)`` for broadcast integer arrays."""
        raise NotImplementedError

    def dense(self, horizon: int) -> np.ndarray:
        """The full tensor ``(H, S, A, S, A)``."""
        raise NotImplementedError

    def check_horizon(self, horizon: int) -> None:
        """Raise if the preference is defined for another number of steps."""


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


class DenseStepPreference(StepPreference):
    """A step preference given as a full tensor, validated on construction.

    Raises
    ------
    InvalidGameError
        For a bad shape, NaN, values outside ``[0, 1]`` or a pair with
        ``r(s,a,s',a') + r(s',a',s,a) != 1``; the message names the entry.
    """

    def __init__(self, tensor, atol: float = ATOL):
        r = check_real_array(tensor, "step preference", InvalidGameError)
        if r.ndim == 4:
            r = r[None]
        if r.ndim != 5 or r.shape[1:3] != r.shape[3:5]:
            raise InvalidGameError(
                "step preference must have shape (S, A, S, A) or (H, S, A, S, A); "
                f"got {np.asarray(tensor).shape}"
            )
        if not np.isfinite(r).all():
            raise InvalidGameError(f"step preference has NaN or inf at r[h, s, a, s', a'] = "
                                   f"r{_first(~np.isfinite(r))}; entries must be finite in [0, 1]")
        if r.size == 0:
            raise InvalidGameError("step preference needs at least one state and action; "
                                   f"got shape {r.shape}")
        bad = (r < -atol) | (r > 1 + atol)
        if bad.any():
            i = _first(bad)
            raise InvalidGameError(f"step preference r{i} = {r[i]:.6g} lies outside [0, 1]")
        asym = np.abs(r + r.transpose(0, 3, 4, 1, 2) - 1.0) > atol
        if asym.any():
            h, s, a, s2, a2 = _first(asym)
            raise InvalidGameError(
                f"step preference is not antisymmetric: r[{h}, {s}, {a}, {s2}, {a2}] + "
                f"r[{h}, {s2}, {a2}, {s}, {a}] = {r[h, s, a, s2, a2] + r[h, s2, a2, s, a]:.6g} != 1"
            )
        self.tensor = np.clip(r, 0.0, 1.0)
        self.n_states, self.n_actions = r.shape[1], r.shape[2]
        sa = self.n_states * self.n_actions
        skew = self.tensor.reshape(r.shape[0], sa, sa) - 0.5
        self._skew = 0.5 * (skew - skew.transpose(0, 2, 1))

    def check_horizon(self, horizon: int) -> None:
        if self.tensor.shape[0] not in (1, horizon):
            raise InvalidGameError(f"step preference has {self.tensor.shape[0]} steps; "
                                   f"the game has {horizon}")

    def apply(self, d: np.ndarray) -> np.ndarray:
        flat = d.reshape(*d.shape[:-2], -1)  # (..., H, SA)
        out = np.einsum("hij,...hj->...hi", self._skew, flat) if self._skew.shape[0] > 1 else \
            flat @ self._skew[0].T
        return out.reshape(d.shape)

    def prob(self, h, s, a, s2, a2) -> np.ndarray:
        h = np.where(self.tensor.shape[0] == 1, 0, h)
        return self.tensor[h, s, a, s2, a2]

    def dense(self, horizon: int) -> np.ndarray:
        return np.broadcast_to(self.tensor, (horizon, *self.tensor.shape[1:])).copy()


class FeatureStepPreference(StepPreference):
    """``r_h(s,a,s',a') = 1/2 + phi_h(s,a)^T Omega_h phi_h(s',a')`` with skew ``Omega``.

    Parameters
    ----------
    features
        ``(S, A, k)`` or ``(H, S, A, k)``.
    skew
        ``(k, k)`` or ``(H, k, k)``, skew-symmetric.

    Raises
    ------
    InvalidGameError
        If ``Omega`` is not skew-symmetric or some ``r`` leaves ``[0, 1]``.
    """

    def __init__(self, features, skew, atol: float = ATOL):
        phi = check_finite_array(features, "features", InvalidGameError)
        om = check_finite_array(skew, "skew", InvalidGameError)
        phi = phi[None] if phi.ndim == 3 else phi
        om = om[None] if om.ndim == 2 else om
        if phi.ndim != 4 or om.ndim != 3 or om.shape[1:] != (phi.shape[3], phi.shape[3]):
            raise InvalidGameError(
                f"features (S, A, k) / (H, S, A, k) and skew (k, k) / (H, k, k) must agree; "
                f"got {np.shape(features)} and {np.shape(skew)}"
            )
        asym = np.abs(om + om.transpose(0, 2, 1)) > atol
        if asym.any():
            h, i, j = _first(asym)
            total = om[h, i, j] + om[h, j, i]
            raise InvalidGameError(f"skew[{h}][{i}, {j}] + skew[{h}][{j}, {i}] = {total:.6g} != 0")
        self.features, self.skew = phi, 0.5 * (om - om.transpose(0, 2, 1))
        self.n_states, self.n_actions = phi.shape[1], phi.shape[2]
        # the extreme values of phi^T Omega phi' over all pairs, per step, in O((SA)^2 k) once
        flat = phi.reshape(phi.shape[0], -1, phi.shape[3])
        steps = max(flat.shape[0], self.skew.shape[0])
        for h in range(steps):
            f = flat[min(h, flat.shape[0] - 1)]
            vals = f @ self.skew[min(h, self.skew.shape[0] - 1)] @ f.T
            if np.abs(vals).max() > 0.5 + atol:
                i = np.unravel_index(np.abs(vals).argmax(), vals.shape)
                raise InvalidGameError(
                    f"step {h}: 1/2 + phi^T Omega phi' = {0.5 + vals[i]:.6g} leaves [0, 1] at "
                    f"(s, a) = {divmod(int(i[0]), self.n_actions)}, "
                    f"(s', a') = {divmod(int(i[1]), self.n_actions)}"
                )

    def check_horizon(self, horizon: int) -> None:
        for name, arr in (("features", self.features), ("skew", self.skew)):
            if arr.shape[0] not in (1, horizon):
                raise InvalidGameError(f"{name} have {arr.shape[0]} steps; the game has {horizon}")

    def apply(self, d: np.ndarray) -> np.ndarray:
        # E_{d'} phi(s',a') per step, then phi(s,a)^T Omega (that mean): O(H S A k)
        mean_phi = np.einsum("...hsa,hsak->...hk", d, self._phi_for(d.shape[-3]))
        proj = np.einsum("hij,...hj->...hi", self._skew_for(d.shape[-3]), mean_phi)
        return np.einsum("hsak,...hk->...hsa", self._phi_for(d.shape[-3]), proj)

    def _phi_for(self, horizon: int) -> np.ndarray:
        return np.broadcast_to(self.features, (horizon, *self.features.shape[1:]))

    def _skew_for(self, horizon: int) -> np.ndarray:
        return np.broadcast_to(self.skew, (horizon, *self.skew.shape[1:]))

    def prob(self, h, s, a, s2, a2) -> np.ndarray:
        h = np.asarray(h)
        hp = np.where(self.features.shape[0] == 1, 0, h)
        hs = np.where(self.skew.shape[0] == 1, 0, h)
        x, y = self.features[hp, s, a], self.features[hp, s2, a2]
        return 0.5 + np.einsum("...i,...ij,...j->...", x, self.skew[hs], y)

    def dense(self, horizon: int) -> np.ndarray:
        phi, om = self._phi_for(horizon), self._skew_for(horizon)
        return 0.5 + np.einsum("hsai,hij,htbj->hsatb", phi, om, phi)
