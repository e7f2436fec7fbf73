"""Containers for control data: :class:`Episode`, :class:`PreferencePairs` and their summaries.

An :class:`Episode` is one rollout of the true reward; :func:`flatten_episodes` stacks
the ``(s_t, a_t)`` pairs of many; :func:`dataset_summary` gives their returns per tier
(004's Table 1). :class:`PreferencePairs` holds labelled pairs of segments and saves
them as an ``.npz`` (no pickle) that names its env and source.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.errors import DatasetError
from prefgym.serialization import json_default
from prefgym.validation import check_real_array

__all__ = ["Episode", "PreferencePairs", "dataset_summary", "flatten_episodes"]


@dataclass
class Episode:
    """One episode: ``observations (T + 1, ...)`` (with the last), ``actions (T, ...)``, ``rewards (T,)``."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def ret(self) -> float:
        """The undiscounted true return."""
        return float(np.sum(self.rewards))


def flatten_episodes(episodes: Sequence[Episode]) -> tuple[np.ndarray, np.ndarray]:
    """Stack the ``(s_t, a_t)`` pairs of all episodes: ``(N, obs_dim)``, ``(N, act_dim)`` (float32)."""
    if not episodes:
        raise DatasetError("no episodes to flatten")
    obs = np.concatenate([np.asarray(e.observations[:-1], np.float32).reshape(e.length, -1)
                          for e in episodes])
    act = np.concatenate([np.asarray(e.actions, np.float32).reshape(e.length, -1) for e in episodes])
    return obs, act


@dataclass
class PreferencePairs:
    """Pairs of segments ``(a, b)`` with labels ``P(a preferred to b)`` in ``[0, 1]``.

    Arrays: ``obs_a``, ``obs_b`` ``(n, L, obs_dim)``; ``act_a``, ``act_b`` ``(n, L, act_dim)``;
    ``mask_a``, ``mask_b`` ``(n, L)`` (False on padding after a short segment);
    ``labels (n,)``; ``returns_a``, ``returns_b`` ``(n,)``, the true segment returns
    (diagnostics only). ``env_id`` names the task, ``info`` the teacher, source and
    segment length.
    """

    obs_a: np.ndarray
    act_a: np.ndarray
    mask_a: np.ndarray
    obs_b: np.ndarray
    act_b: np.ndarray
    mask_b: np.ndarray
    labels: np.ndarray
    returns_a: np.ndarray
    returns_b: np.ndarray
    env_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    _ARRAYS = ("obs_a", "act_a", "mask_a", "obs_b", "act_b", "mask_b", "labels", "returns_a", "returns_b")

    def __post_init__(self):
        self._coerce_arrays()
        n = self._check_rows()
        for side in ("a", "b"):
            self._check_segments(side, n)
        if self.obs_a.shape != self.obs_b.shape or self.act_a.shape != self.act_b.shape:
            raise DatasetError("segments a and b must have the same length and dimensions (n, L, dim); got "
                               f"obs {self.obs_a.shape} vs {self.obs_b.shape}, act {self.act_a.shape} vs "
                               f"{self.act_b.shape}")
        lab = self.labels.astype(np.float64)
        if np.isnan(lab).any() or (lab < 0).any() or (lab > 1).any():
            raise DatasetError("preference labels must lie in [0, 1] (drop skipped queries first)")
        for name in ("returns_a", "returns_b"):
            if getattr(self, name).ndim != 1:
                raise DatasetError(f"PreferencePairs.{name} must be 1-D (n,); got shape "
                                   f"{getattr(self, name).shape}")
        self.labels = lab

    def _coerce_arrays(self) -> None:
        """Masks to bool, the other fields to real arrays (a float array keeps its dtype)."""
        for name in self._ARRAYS:
            value = getattr(self, name)
            if name.startswith("mask"):
                arr = np.asarray(value)
                if arr.dtype != np.bool_ and not (np.issubdtype(arr.dtype, np.number)
                                                 and np.isin(arr, (0, 1)).all()):
                    raise DatasetError(f"PreferencePairs.{name} must be a boolean array; "
                                       f"got dtype {arr.dtype}")
                arr = arr.astype(bool)
            else:
                arr = check_real_array(value, f"PreferencePairs.{name}", DatasetError)
                if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
                    arr = value  # keep the caller's float dtype (float32 segments stay float32)
            setattr(self, name, arr)

    def _check_rows(self) -> int:
        """The number of pairs ``n``: labels are 1-D and every field has ``n`` rows."""
        n = len(self.labels) if self.labels.ndim == 1 else -1
        if n < 0:
            raise DatasetError(f"PreferencePairs.labels must be 1-D (n,); got shape {self.labels.shape}")
        for name in self._ARRAYS:
            arr = getattr(self, name)
            if arr.ndim == 0 or len(arr) != n:
                rows = len(arr) if arr.ndim else 0
                raise DatasetError(f"PreferencePairs.{name} has {rows} rows, labels {n}")
        return n

    def _check_segments(self, side: str, n: int) -> None:
        """Segment ``side``'s shapes agree, each has a valid step, and valid steps are finite."""
        obs, act, mask = (getattr(self, f"{k}_{side}") for k in ("obs", "act", "mask"))
        if obs.ndim != 3 or act.ndim != 3 or mask.ndim != 2:
            raise DatasetError(f"PreferencePairs needs obs_{side} (n, L, obs_dim), act_{side} "
                               f"(n, L, act_dim) and mask_{side} (n, L); got shapes {obs.shape}, "
                               f"{act.shape}, {mask.shape}")
        if not (obs.shape[:2] == act.shape[:2] == mask.shape):
            raise DatasetError(f"segments {side} disagree on (n, L): obs_{side} {obs.shape}, "
                               f"act_{side} {act.shape}, mask_{side} {mask.shape}")
        if n and not mask.any(axis=1).all():
            i = int(np.flatnonzero(~mask.any(axis=1))[0])
            raise DatasetError(f"segment {side} of pair {i} has no valid step "
                               f"(mask_{side}[{i}] is all False)")
        for name, arr in ((f"obs_{side}", obs), (f"act_{side}", act)):
            bad = ~np.isfinite(arr) & mask[..., None]
            if bad.any():
                i, t, d = (int(x) for x in np.argwhere(bad)[0])
                raise DatasetError(f"PreferencePairs.{name}[{i}, {t}, {d}] = {arr[i, t, d]} at a valid "
                                   "step; observations and actions must be finite")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def segment_length(self) -> int:
        return int(self.obs_a.shape[1])

    def subset(self, index) -> PreferencePairs:
        """The pairs at ``index`` (an index array, slice or boolean mask)."""
        return PreferencePairs(**{k: getattr(self, k)[index] for k in self._ARRAYS},
                               env_id=self.env_id, info=dict(self.info))

    def accuracy(self) -> float:
        """Agreement of the labels with the true segment returns (ties and 1/2 labels count half)."""
        truth = np.sign(self.returns_a - self.returns_b)
        lab = np.sign(self.labels - 0.5)
        return float(np.mean(np.where((truth == 0) | (lab == 0), 0.5, truth == lab)))

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Save to ``path`` (``.npz``), atomically; the env id and info go in as JSON.

        With ``overwrite=False`` an existing file raises :class:`~prefgym.errors.OutputExistsError`.
        """
        from prefgym.errors import OutputExistsError
        from prefgym.fileio import atomic_write

        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{str(path)!r} exists; pass --overwrite (overwrite=True) to replace it")
        meta = json.dumps({"format": "prefgym.PreferencePairs/1", "env_id": self.env_id, "info": self.info},
                          default=json_default)
        with atomic_write(path, "wb") as fh:
            np.savez_compressed(fh, allow_pickle=False, meta=np.array(meta),
                                **{k: getattr(self, k) for k in self._ARRAYS})
        return path

    @classmethod
    def load(cls, path: str | Path, env_id: str | None = None) -> PreferencePairs:
        """Load pairs saved by :meth:`save`; with ``env_id``, check they were recorded on it.

        Raises
        ------
        DatasetError
            If the file does not exist, is not a preference dataset, or names another env.
        """
        path = Path(path)
        if not path.exists() and path.with_suffix(path.suffix + ".npz").exists():
            path = path.with_suffix(path.suffix + ".npz")
        if not path.exists():
            raise DatasetError(f"preference dataset {str(path)!r} not found; make it with "
                               f"`prefgym data preferences --env ENV --out {path}`")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "meta" not in data.files:
                    raise DatasetError(f"{str(path)!r} is not a prefgym preference dataset (no metadata)")
                meta = json.loads(str(data["meta"]))
                missing = [k for k in cls._ARRAYS if k not in data.files]
                if missing:
                    raise DatasetError(f"preference dataset {str(path)!r} lacks the arrays {missing}")
                arrays = {k: data[k] for k in cls._ARRAYS}
        except DatasetError:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy raises many types for a damaged .npz
            raise DatasetError(f"preference dataset {str(path)!r} is unreadable (empty, truncated, corrupted "
                               f"or pickled: {type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict):
            raise DatasetError(f"preference dataset {str(path)!r}: metadata is not a JSON object")
        if env_id is not None and meta.get("env_id") not in (None, env_id):
            raise DatasetError(f"preference dataset {str(path)!r} was recorded on {meta['env_id']!r}, "
                               f"not {env_id!r}")
        return cls(**arrays, env_id=meta.get("env_id"), info=meta.get("info", {}))


def dataset_summary(episodes: Sequence[Episode], by: str = "tier") -> dict[str, dict[str, float]]:
    """Mean / std of episode returns, episode and step counts per ``by`` value (004's Table 1 for tiers)."""
    groups: dict[str, list[Episode]] = {}
    for e in episodes:
        groups.setdefault(str(e.metadata.get(by, "all")), []).append(e)
    out = {}
    for key, eps in groups.items():
        rets = np.array([e.ret for e in eps])
        out[key] = {"mean_return": float(rets.mean()), "std_return": float(rets.std()),
                    "episodes": len(eps), "steps": int(sum(e.length for e in eps))}
    return out
