"""Demonstration and preference data for continuous control (004's appendix, after Brown et al. 2019).

The pipeline of 004 (App. A.2.1), one function and one CLI command per step:

1. :func:`train_expert` (``prefgym data expert``): SB3 SAC on the true reward,
   saving checkpoints along the way (``<out>/checkpoints/sac_<steps>_steps.zip``,
   ``<out>/final.zip`` and a manifest ``<out>/expert.json`` naming the env).
2. :func:`make_checkpoint_rollouts` (``prefgym data rollouts``): roll out every
   checkpoint for ``steps_per_checkpoint`` steps (004: 30k) and save the
   episodes as one Minari dataset, ranked: checkpoints are split by mean return
   into quality tiers ``low``, ``medium``, ``high`` (episode metadata
   ``checkpoint``, ``checkpoint_steps``, ``checkpoint_return``, ``tier``, ``return``).
3. :func:`make_demonstrations` (``prefgym data demos``): a demonstration Minari
   dataset, rolled out from a policy (an expert zip, an SB3 model, a scripted
   controller) or copied from the ``high`` tier of a rollouts dataset.
4. :func:`build_preference_pairs` (``prefgym data preferences``): pairs of
   segments from episodes of *different checkpoints* (004: the ``low`` and
   ``medium`` tiers), labelled by a synthetic teacher over the true segment
   return (:mod:`prefgym.teachers`) or, as T-REX does, by checkpoint rank.
   Saved as an ``.npz`` (:class:`PreferencePairs`) that names its env and source.

Datasets live under Minari's root: ``$MINARI_DATASETS_PATH`` if set, else
``~/.minari/datasets``; every function takes ``root=`` to override it. Ids
default to ``prefgym/<env id>/<kind>-v0``, e.g. ``prefgym/Hopper-v5/checkpoints-v0``.
A missing dataset, or one recorded on another env, raises :class:`DatasetError`
naming it. Minari is imported only when a dataset is read or written, and
written with ``minari.create_dataset_from_buffers`` in Arrow format (no
``jax`` / ``h5py`` needed).

>>> pairs = build_preference_pairs(episodes, n_pairs=1000, segment_length=50, teacher="oracle")
>>> pairs.save("prefs.npz"); PreferencePairs.load("prefs.npz", env_id="Hopper-v5")
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from prefgym.errors import DatasetError, InvalidArgumentError, PrefgymError
from prefgym.serialization import json_default
from prefgym.teachers import SyntheticTeacher, as_teacher
from prefgym.validation import check_int, check_real_array, check_seed

__all__ = [
    "DatasetError",
    "Episode",
    "ExpertRun",
    "PreferencePairs",
    "TIER_NAMES",
    "add_data_commands",
    "build_preference_pairs",
    "collect_episodes",
    "dataset_summary",
    "default_dataset_id",
    "flatten_episodes",
    "list_checkpoints",
    "load_episodes",
    "main",
    "make_checkpoint_rollouts",
    "make_demonstrations",
    "minari_root",
    "scripted_policy",
    "train_expert",
    "write_dataset",
]

TIER_NAMES = ("low", "medium", "high")
_CHECKPOINT_RE = re.compile(r"_(\d+)_steps\.zip$")




def default_dataset_id(env_id: str, kind: str) -> str:
    """``prefgym/<env id>/<kind>-v0``: e.g. ``prefgym/Hopper-v5/demos-v0``."""
    return f"prefgym/{env_id.replace('/', '-')}/{kind}-v0"


# ------------------------------------------------------------------ containers
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



# ------------------------------------------------------------------ policies and rollouts
def _inverted_pendulum_pd(obs: np.ndarray) -> float:
    # InvertedPendulum-v5 obs = (cart x, pole angle, cart velocity, pole angular velocity)
    return float(np.dot([0.3, 10.0, 1.0, 3.0], obs))


def _pendulum_swing_up(obs: np.ndarray) -> float:
    # Pendulum-v1 obs = (cos th, sin th, th_dot); th = 0 is upright. Energy pumping, then PD at the top.
    c, s, w = obs
    if c > 0.8:
        return -(8.0 * float(np.arctan2(s, c)) + 1.5 * float(w))
    energy = 0.5 * w**2 / 15.0 + (c - 1.0)  # < 0 below the upright energy
    return 2.0 * float(np.sign(w) or 1.0) * (1.0 if energy < 0 else -1.0)


_SCRIPTED: dict[str, tuple[Callable[[np.ndarray], float], float]] = {
    "InvertedPendulum-v5": (_inverted_pendulum_pd, 3.0),
    "InvertedPendulum-v4": (_inverted_pendulum_pd, 3.0),
    "Pendulum-v1": (_pendulum_swing_up, 2.0),
}


def scripted_policy(env_id: str, noise: float = 0.0,
                    seed: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A scripted demonstrator for the cheap tasks, with Gaussian action noise of std ``noise``.

    ``InvertedPendulum-v5``: a PD controller (balances for 1000 steps up to noise ~1;
    noise 1.5-3 gives graded, falling policies). ``Pendulum-v1``: energy-pumping
    swing-up then PD (return about -150; noise 2-4 degrades it). Actions are clipped
    to the action bounds.
    """
    if env_id not in _SCRIPTED:
        raise ValueError(f"no scripted demonstrator for {env_id!r}; have {sorted(_SCRIPTED)}")
    law, bound = _SCRIPTED[env_id]
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        u = law(np.asarray(obs, np.float64)) + (noise * rng.standard_normal() if noise else 0.0)
        return np.array([np.clip(u, -bound, bound)], dtype=np.float32)

    return policy


def load_policy(path: str | Path, device: str = "cpu", trust_remote_code: bool = False):
    """Load a SAC expert or checkpoint written by ``prefgym data expert`` (no pickle).

    A third-party SB3 zip (whose pickled fields SB3 un-pickles, running code from the
    file) is read only with ``trust_remote_code=True``; otherwise
    :class:`~prefgym.errors.UnsafeFileError`. A missing or broken file raises
    :class:`~prefgym.errors.AgentLoadError`.
    """
    from prefgym.sb3_files import load_sb3_model

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"policy file {str(path)!r} not found")
    return load_sb3_model(path, device=device, trust_remote_code=trust_remote_code, algorithm="SAC")


def _as_policy(policy, env, deterministic: bool,
               trust_remote_code: bool = False) -> Callable[[np.ndarray], Any]:
    if policy is None:
        return lambda obs: env.action_space.sample()
    if isinstance(policy, (str, Path)):
        policy = load_policy(policy, trust_remote_code=trust_remote_code)
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return policy
    raise TypeError("policy must be None (random), a path, an SB3 model or a callable; "
                    f"got {type(policy).__name__}")


def _make_env(env, env_kwargs: dict | None):
    import gymnasium

    if isinstance(env, str):
        return gymnasium.make(env, **(env_kwargs or {})), True
    return env, False


def collect_episodes(
    env,
    policy=None,
    n_episodes: int | None = None,
    n_steps: int | None = None,
    deterministic: bool = True,
    seed: int = 0,
    env_kwargs: dict | None = None,
    metadata: dict[str, Any] | None = None,
    progress_bar: bool = False,
    desc: str = "rollouts",
    trust_remote_code: bool = False,
) -> list[Episode]:
    """Roll out ``policy`` for ``n_episodes`` episodes, or whole episodes until ``n_steps`` steps.

    Parameters
    ----------
    env
        A Gymnasium env or id (made with ``env_kwargs``).
    policy
        None (uniform random), a path to an SB3 zip, an SB3 model (``predict``), or a
        callable ``obs -> action``.
    seed
        Episode ``i`` is reset with ``seed + i``; the action space is seeded with ``seed``.
    metadata
        Copied into every episode's metadata.
    trust_remote_code
        Allow a third-party SB3 zip as ``policy`` (see :func:`load_policy`).
    """
    if (n_episodes is None) == (n_steps is None):
        raise InvalidArgumentError("give exactly one of n_episodes and n_steps")
    if n_episodes is not None:
        n_episodes = check_int(n_episodes, "n_episodes", minimum=1)
    if n_steps is not None:
        n_steps = check_int(n_steps, "n_steps", minimum=1)
    seed = check_seed(seed)
    env, owned = _make_env(env, env_kwargs)
    env.action_space.seed(seed)
    act = _as_policy(policy, env, deterministic, trust_remote_code)
    total = n_episodes if n_episodes is not None else n_steps
    bar = tqdm(total=total, disable=not progress_bar, desc=desc, unit="ep" if n_episodes else "step",
               mininterval=0.25)
    episodes: list[Episode] = []
    steps = 0
    try:
        while (n_episodes is not None and len(episodes) < n_episodes) or \
                (n_steps is not None and steps < n_steps):
            obs, _ = env.reset(seed=seed + len(episodes))
            observations, actions, rewards = [obs], [], []
            terminated = truncated = False
            while not (terminated or truncated):
                a = act(obs)
                obs, r, terminated, truncated, _ = env.step(a)
                observations.append(obs)
                actions.append(a)
                rewards.append(float(r))
                if n_steps is not None:
                    bar.update(1)
            steps += len(rewards)
            episodes.append(Episode(np.asarray(observations), np.asarray(actions), np.asarray(rewards),
                                    bool(terminated), bool(truncated), dict(metadata or {})))
            if n_episodes is not None:
                bar.update(1)
    finally:
        bar.close()
        if owned:
            env.close()
    return episodes


# ------------------------------------------------------------------ Minari
@contextlib.contextmanager
def minari_root(root: str | Path | None) -> Iterator[Path]:
    """Point Minari at ``root`` for a while (None: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    if root is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(root).expanduser().resolve())
    try:
        yield Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))
    finally:
        if root is not None:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = old


def _import_minari():
    try:
        import minari
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("control datasets need minari: pip install 'prefgym[mujoco]'") from exc
    return minari


def write_dataset(
    dataset_id: str,
    episodes: Sequence[Episode],
    env_id: str,
    root: str | Path | None = None,
    overwrite: bool = False,
    kind: str = "rollouts",
    algorithm_name: str = "prefgym",
    description: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    env_kwargs: dict | None = None,
):
    """Write ``episodes`` as the Minari dataset ``dataset_id`` (Arrow format) and return it.

    Each episode's ``metadata`` becomes Minari episode metadata; ``kind`` and
    ``extra_metadata`` (JSON-encoded) go into the dataset metadata. The env spec
    recorded is that of ``gymnasium.make(env_id, **env_kwargs)``.
    """
    import gymnasium
    from minari.data_collector.episode_buffer import EpisodeBuffer

    minari = _import_minari()
    if not episodes:
        raise DatasetError(f"no episodes to write to {dataset_id!r}")
    env = gymnasium.make(env_id, **(env_kwargs or {}))
    obs_dtype, act_dtype = env.observation_space.dtype, env.action_space.dtype
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=np.asarray(e.observations, dtype=obs_dtype),
            actions=np.asarray(e.actions, dtype=act_dtype).reshape((e.length, *env.action_space.shape)),
            rewards=[float(r) for r in e.rewards],
            terminations=[False] * (e.length - 1) + [bool(e.terminated)],
            truncations=[False] * (e.length - 1) + [bool(e.truncated)],
        )
        for i, e in enumerate(episodes)
    ]
    import shutil
    import uuid

    from minari.dataset.minari_dataset import parse_dataset_id

    from prefgym.fileio import publish_dir

    try:
        parse_dataset_id(dataset_id)
    except ValueError as exc:
        raise DatasetError(f"bad dataset id {dataset_id!r}: {exc}") from None
    with minari_root(root) as where:
        where = where.resolve()
    final = where.joinpath(*dataset_id.split("/"))
    if final.exists() and not overwrite:
        raise DatasetError(f"Minari dataset {dataset_id!r} already exists; pass overwrite=True "
                           f"(--overwrite) to replace it")
    # write under a staging root beside the real one, then move the finished dataset in: a failed or
    # killed write leaves no partial dataset under the root
    where.parent.mkdir(parents=True, exist_ok=True)
    stage_root = where.parent / f".{where.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        with minari_root(stage_root), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Minari nags about author / permalink fields
            ds = minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env, algorithm_name=algorithm_name, author="prefgym",
                description=description or f"prefgym {kind} on {env_id}", data_format="arrow",
            )
            ds.storage.update_episode_metadata([_jsonable(e.metadata) for e in episodes])
            ds.storage.update_metadata({"prefgym_kind": kind,
                                        "prefgym_metadata": json.dumps(extra_metadata or {},
                                                                       default=json_default)})
        staged = stage_root.joinpath(*dataset_id.split("/"))
        final.parent.mkdir(parents=True, exist_ok=True)
        for extra in staged.parent.iterdir():  # namespace metadata, if Minari wrote any
            if extra != staged and extra.is_file() and not (final.parent / extra.name).exists():
                os.replace(extra, final.parent / extra.name)
        publish_dir(staged, final)
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)
        env.close()
    return load_dataset(dataset_id, env_id=env_id, root=where)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=json_default))


def load_dataset(dataset_id: str, env_id: str | None = None, root: str | Path | None = None,
                 kind: str | None = None):
    """Open the Minari dataset ``dataset_id``, checking its env id (and ``kind``) if given.

    Raises
    ------
    DatasetError
        If the dataset is not found under the root, was recorded on another env,
        or is of another kind.
    """
    minari = _import_minari()
    with minari_root(root) as where, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hint = {"demos": "prefgym data demos", "checkpoints": "prefgym data rollouts"}.get(kind or "",
                                                                                      "prefgym data")
        try:
            ds = minari.load_dataset(dataset_id)
        except Exception as exc:  # noqa: BLE001 - a damaged dataset can fail in many ways
            if isinstance(dataset_id, str) and (Path(where) / dataset_id / "data").is_dir() \
                    and not isinstance(exc, FileNotFoundError):
                raise _corrupted(dataset_id, where, exc, hint) from exc
            if not isinstance(exc, FileNotFoundError | ValueError):
                raise
            raise DatasetError(f"Minari dataset {dataset_id!r} not found under {str(where)!r} "
                               f"(set MINARI_DATASETS_PATH or root=); make it with `{hint}`") from exc
    spec = ds.spec.env_spec
    recorded = spec.id if spec is not None else None
    if env_id is not None and recorded != env_id:
        raise DatasetError(f"Minari dataset {dataset_id!r} was recorded on {recorded!r}, not {env_id!r}")
    got = ds.storage.metadata.get("prefgym_kind")
    if kind is not None and got is not None and got != kind:
        raise DatasetError(f"Minari dataset {dataset_id!r} holds {got!r} data, not {kind!r}")
    return ds


def load_episodes(
    dataset_id: str,
    env_id: str | None = None,
    root: str | Path | None = None,
    tiers: Sequence[str] | None = None,
    kind: str | None = None,
    max_steps: int | None = None,
) -> list[Episode]:
    """The episodes of a Minari dataset (only those of ``tiers``, up to ``max_steps`` steps, if given).

    Raises
    ------
    DatasetError
        As :func:`load_dataset`, or if no episode is of the requested tiers.
    """
    ds = load_dataset(dataset_id, env_id=env_id, root=root, kind=kind)
    with minari_root(root) as where:
        try:
            episodes, metas = _read_episodes(ds, tiers, max_steps)
        except Exception as exc:  # noqa: BLE001 - damaged episode files fail in many ways
            raise _corrupted(dataset_id, where, exc, "prefgym data") from exc
    if not episodes:
        have = sorted({m.get("tier") for m in metas if m.get("tier") is not None})
        raise DatasetError(f"Minari dataset {dataset_id!r} has no episodes of tiers {list(tiers or [])}; "
                           f"it has {have}")
    return episodes


def _corrupted(dataset_id: str, where, exc: BaseException, hint: str) -> DatasetError:
    return DatasetError(f"Minari dataset {dataset_id!r} exists under {str(where)!r} but cannot be read: "
                        f"it is corrupted or incomplete ({type(exc).__name__}: {str(exc)[:120]}); "
                        f"remake it with `{hint} ... --overwrite`")


def _read_episodes(ds, tiers, max_steps) -> tuple[list[Episode], list[dict]]:
    """The episodes of ``ds`` of ``tiers`` (up to ``max_steps`` steps) and every episode's metadata."""
    idx = list(range(ds.total_episodes))
    metas = list(ds.storage.get_episode_metadata(idx))
    episodes = []
    steps = 0
    for meta, ep in zip(metas, ds.iterate_episodes(idx), strict=True):
        meta = {k: v for k, v in meta.items() if k not in ("id", "total_steps", "seed", "options")}
        if tiers is not None and meta.get("tier") not in tiers:
            continue
        episodes.append(Episode(np.asarray(ep.observations), np.asarray(ep.actions),
                                np.asarray(ep.rewards), bool(ep.terminations[-1]),
                                bool(ep.truncations[-1]), meta))
        steps += len(ep.rewards)
        if max_steps is not None and steps >= max_steps:
            break
    return episodes, metas


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


# ------------------------------------------------------------------ the pipeline
@dataclass
class ExpertRun:
    """What :func:`train_expert` made: the model, its checkpoints ``[(steps, path)]`` and the final zip."""

    model: Any
    env_id: str
    checkpoints: list[tuple[int, Path]]
    final_path: Path
    out_dir: Path


def train_expert(
    env_id: str,
    total_timesteps: int,
    out_dir: str | Path,
    n_checkpoints: int = 10,
    sac_kwargs: dict | None = None,
    seed: int = 0,
    env_kwargs: dict | None = None,
    callback=None,
    progress_bar: bool = False,
    verbose: int = 0,
    overwrite: bool = False,
) -> ExpertRun:
    """Train an SB3 SAC expert on the true reward, saving ``n_checkpoints`` checkpoints.

    Parameters
    ----------
    sac_kwargs
        SAC constructor arguments (SB3 defaults otherwise: (256, 256) nets, lr 3e-4).
    callback
        Extra SB3 callback(s).

    overwrite
        Replace a non-empty ``out_dir`` (otherwise :class:`~prefgym.errors.OutputExistsError`).

    Writes ``<out_dir>/checkpoints/sac_<steps>_steps.zip``, ``<out_dir>/final.zip``
    (:func:`prefgym.sb3_files.save_sb3_model`: JSON and safetensors, no pickle) and
    ``<out_dir>/expert.json`` (env id, budget, SAC arguments). The run is written into a
    hidden staging folder beside ``out_dir`` and moved into place when it ends, so a
    killed run leaves ``out_dir`` as it was.

    Raises
    ------
    InvalidArgumentError
        If ``total_timesteps`` or ``n_checkpoints`` is not a positive integer, or
        there are more checkpoints than timesteps (nothing is written then).
    """
    total_timesteps = check_int(total_timesteps, "total_timesteps", minimum=1)
    n_checkpoints = check_int(n_checkpoints, "n_checkpoints", minimum=1)
    if n_checkpoints > total_timesteps:
        raise InvalidArgumentError(f"n_checkpoints = {n_checkpoints} exceeds total_timesteps = "
                                   f"{total_timesteps}; each checkpoint needs at least one step")
    seed = check_seed(seed)
    import gymnasium
    from stable_baselines3 import SAC

    from prefgym.fileio import atomic_write_text, staged_output_dir
    from prefgym.sb3_files import save_sb3_model

    out = Path(out_dir)
    env = gymnasium.make(env_id, **(env_kwargs or {}))
    model = SAC("MlpPolicy", env, seed=seed, verbose=verbose, **(sac_kwargs or {}))
    every = max(int(total_timesteps) // max(int(n_checkpoints), 1), 1)
    with staged_output_dir(out, overwrite=overwrite) as stage:
        ckpt_dir = stage / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        callbacks = [_SafeCheckpointCallback(every, ckpt_dir, env_id)]
        if callback is not None:
            callbacks += list(callback) if isinstance(callback, (list, tuple)) else [callback]
        model.learn(int(total_timesteps), callback=callbacks, progress_bar=progress_bar)
        save_sb3_model(model, stage / "final.zip", env_id=env_id)
        manifest = {"format": "prefgym.expert", "format_version": 1, "env_id": env_id,
                    "env_kwargs": env_kwargs or {}, "total_timesteps": int(total_timesteps),
                    "seed": seed, "sac_kwargs": sac_kwargs or {}, "final": "final.zip"}
        atomic_write_text(stage / "expert.json", json.dumps(manifest, indent=2, default=json_default))
    env.close()
    return ExpertRun(model, env_id, list_checkpoints(out, env_id), out / "final.zip", out)


def _SafeCheckpointCallback(every: int, folder: Path, env_id: str):
    """SB3's ``CheckpointCallback`` naming (``sac_<steps>_steps.zip``), saved by ``save_sb3_model``."""
    from stable_baselines3.common.callbacks import BaseCallback

    from prefgym.sb3_files import save_sb3_model

    class SafeCheckpointCallback(BaseCallback):
        def _on_step(self) -> bool:
            if self.n_calls % every == 0:
                save_sb3_model(self.model, folder / f"sac_{self.num_timesteps}_steps.zip", env_id=env_id)
            return True

    return SafeCheckpointCallback()


def list_checkpoints(out_dir: str | Path, env_id: str | None = None,
                     include_final: bool = True) -> list[tuple[int, Path]]:
    """The checkpoints ``[(steps, path)]`` of an expert run, sorted by steps.

    Raises
    ------
    DatasetError
        If the folder holds no checkpoint, or its ``expert.json`` names another env.
    """
    out = Path(out_dir)
    manifest = out / "expert.json"
    info = _read_manifest(manifest) if manifest.exists() else {}
    if env_id is not None and manifest.exists():
        recorded = info.get("env_id")
        if recorded != env_id:
            raise DatasetError(f"expert run {str(out)!r} was trained on {recorded!r}, not {env_id!r}")
    found = []
    for p in (out / "checkpoints").glob("*_steps.zip") if (out / "checkpoints").is_dir() else []:
        m = _CHECKPOINT_RE.search(p.name)
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    if include_final and (out / "final.zip").exists():
        total = info.get("total_timesteps", 0)
        if isinstance(total, bool) or not isinstance(total, int):
            raise DatasetError(f"{str(manifest)!r}: total_timesteps must be an integer; got {total!r}")
        if not found or found[-1][0] < total:
            found.append((int(total), out / "final.zip"))
    if not found:
        raise DatasetError(f"no SAC checkpoints in {str(out)!r}; make them with "
                           f"`prefgym data expert --env ENV --out {out}`")
    return found


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"expert manifest {str(path)!r} is unreadable ({exc})") from None
    if not isinstance(info, dict):
        raise DatasetError(f"expert manifest {str(path)!r} must hold a JSON object")
    from prefgym.sb3_files import check_format

    try:
        check_format(info, "prefgym.expert", 1, str(path))
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    return info


def _assign_tiers(mean_returns: Sequence[float], n_tiers: int = 3) -> list[str]:
    names = TIER_NAMES if n_tiers == 3 else tuple(f"tier{k}" for k in range(n_tiers))
    order = np.argsort(mean_returns, kind="stable")
    tiers = [""] * len(order)
    for k, group in enumerate(np.array_split(order, n_tiers)):
        for i in group:
            tiers[int(i)] = names[k]
    return tiers


def make_checkpoint_rollouts(
    env_id: str,
    checkpoints: str | Path | Sequence,
    steps_per_checkpoint: int = 30_000,
    dataset_id: str | None = None,
    n_tiers: int = 3,
    deterministic: bool = True,
    seed: int = 0,
    root: str | Path | None = None,
    overwrite: bool = False,
    env_kwargs: dict | None = None,
    progress_bar: bool = False,
    trust_remote_code: bool = False,
):
    """Roll out every checkpoint and save the ranked episodes as one Minari dataset.

    Parameters
    ----------
    checkpoints
        An expert-run folder (:func:`train_expert`), or a sequence of policies
        (paths, SB3 models, callables) or ``(steps, policy)`` pairs, in training order.
    steps_per_checkpoint
        Whole episodes are collected until this many steps (004: 30k).
    n_tiers
        Checkpoints are split by mean return into this many tiers (3: low, medium, high).
    trust_remote_code
        Allow third-party SB3 zips among the checkpoints (see :func:`load_policy`).

    Returns
    -------
    The Minari dataset.
    """
    steps_per_checkpoint = check_int(steps_per_checkpoint, "steps_per_checkpoint", minimum=1)
    n_tiers = check_int(n_tiers, "n_tiers", minimum=1)
    if isinstance(checkpoints, (str, Path)):
        checkpoints = list_checkpoints(checkpoints, env_id)
    items = [c if isinstance(c, tuple) else (i, c) for i, c in enumerate(checkpoints)]
    if len(items) < n_tiers:
        raise DatasetError(f"need at least {n_tiers} checkpoints for {n_tiers} tiers; got {len(items)}")
    dataset_id = dataset_id or default_dataset_id(env_id, "checkpoints")
    per_ckpt: list[list[Episode]] = []
    for k, (steps, policy) in enumerate(tqdm(items, disable=not progress_bar, desc="checkpoints")):
        eps = collect_episodes(env_id, policy, n_steps=steps_per_checkpoint, deterministic=deterministic,
                               seed=seed + 10_000 * k, env_kwargs=env_kwargs,
                               trust_remote_code=trust_remote_code,
                               metadata={"checkpoint": k, "checkpoint_steps": int(steps),
                                         "source": str(policy) if isinstance(policy, (str, Path)) else ""})
        per_ckpt.append(eps)
    means = [float(np.mean([e.ret for e in eps])) for eps in per_ckpt]
    tiers = _assign_tiers(means, n_tiers)
    episodes = []
    for eps, mean, tier in zip(per_ckpt, means, tiers, strict=True):
        for e in eps:
            e.metadata.update(checkpoint_return=mean, tier=tier, **{"return": e.ret})
            episodes.append(e)
    summary = dataset_summary(episodes)
    extra = {"tiers": summary, "checkpoint_returns": means, "checkpoint_tiers": tiers,
             "steps_per_checkpoint": steps_per_checkpoint, "deterministic": deterministic}
    return write_dataset(dataset_id, episodes, env_id, root=root, overwrite=overwrite, kind="checkpoints",
                         description=f"prefgym ranked SAC checkpoint rollouts on {env_id}",
                         extra_metadata=extra, env_kwargs=env_kwargs)


def make_demonstrations(
    env_id: str,
    policy=None,
    source: str | None = None,
    tier: str = "high",
    dataset_id: str | None = None,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    deterministic: bool = True,
    seed: int = 0,
    root: str | Path | None = None,
    overwrite: bool = False,
    env_kwargs: dict | None = None,
    progress_bar: bool = False,
    trust_remote_code: bool = False,
):
    """Save demonstrations as a Minari dataset: rollouts of ``policy`` or ``source``'s ``tier`` episodes.

    Parameters
    ----------
    policy
        A path to an SB3 zip, an SB3 model, or a callable (e.g. a scripted controller).
    source
        Instead of ``policy``: a checkpoint-rollouts dataset id; its ``tier`` episodes
        (004: demonstrations = ``high``) are copied, up to ``n_steps`` steps.
    trust_remote_code
        Allow a third-party SB3 zip as ``policy`` (see :func:`load_policy`).
    """
    if (policy is None) == (source is None):
        raise InvalidArgumentError("give exactly one of policy and source")
    if n_steps is not None:
        n_steps = check_int(n_steps, "n_steps", minimum=1)
    if n_episodes is not None:
        n_episodes = check_int(n_episodes, "n_episodes", minimum=1)
    dataset_id = dataset_id or default_dataset_id(env_id, "demos")
    if source is not None:
        episodes = load_episodes(source, env_id=env_id, root=root, tiers=[tier], kind="checkpoints",
                                 max_steps=n_steps)
        origin = {"source": source, "tier": tier}
    else:
        if n_steps is None and n_episodes is None:
            n_steps = 10_000
        episodes = collect_episodes(env_id, policy, n_episodes=n_episodes, n_steps=n_steps,
                                    deterministic=deterministic, seed=seed, env_kwargs=env_kwargs,
                                    progress_bar=progress_bar, desc="demonstrations",
                                    trust_remote_code=trust_remote_code)
        for e in episodes:
            e.metadata["return"] = e.ret
        origin = {"policy": str(policy) if isinstance(policy, (str, Path)) else type(policy).__name__}
    if not episodes:
        raise DatasetError(f"no demonstration episodes to save for {env_id!r}")
    extra = {**origin, "summary": dataset_summary(episodes, by="_")["all"]}
    return write_dataset(dataset_id, episodes, env_id, root=root, overwrite=overwrite, kind="demos",
                         description=f"prefgym demonstrations on {env_id}", extra_metadata=extra,
                         env_kwargs=env_kwargs)


def _segment(e: Episode, L: int, rng: np.random.Generator):
    T = e.length
    start = int(rng.integers(0, T - L + 1)) if T >= L else 0
    n = min(L, T)
    obs = np.asarray(e.observations[start:start + n], np.float32).reshape(n, -1)
    act = np.asarray(e.actions[start:start + n], np.float32).reshape(n, -1)
    rew = np.asarray(e.rewards[start:start + n], np.float64)
    pad = L - n
    mask = np.arange(L) < n
    if pad:
        obs = np.concatenate([obs, np.zeros((pad, obs.shape[1]), np.float32)])
        act = np.concatenate([act, np.zeros((pad, act.shape[1]), np.float32)])
        rew = np.concatenate([rew, np.zeros(pad)])
    return obs, act, rew, mask


def build_preference_pairs(
    source: str | Sequence[Episode],
    n_pairs: int,
    segment_length: int | None = 50,
    teacher: SyntheticTeacher | str | dict | None = "oracle",
    tiers: Sequence[str] | None = ("low", "medium"),
    label_by: str = "teacher",
    env_id: str | None = None,
    root: str | Path | None = None,
    seed: int = 0,
    progress_bar: bool = False,
) -> PreferencePairs:
    """Pairs of segments from episodes of two different checkpoints, labelled by a teacher.

    Parameters
    ----------
    source
        A checkpoint-rollouts dataset id (:func:`make_checkpoint_rollouts`) or episodes
        whose metadata has ``checkpoint`` (and ``tier``, ``checkpoint_return``).
    n_pairs
        Pairs to return (skipped queries are re-drawn).
    segment_length
        Steps per segment (a random window of each episode; shorter episodes are
        padded and masked); None compares whole episodes.
    teacher
        A :class:`~prefgym.teachers.SyntheticTeacher`, a B-Pref name or a dict; the skip
        and equal teachers take the mean true segment return of the pool as margin.
    tiers
        Use episodes of these tiers only (004: ``low`` and ``medium``); None: all.
    label_by
        ``"teacher"`` (the true segment returns) or ``"checkpoint"`` (T-REX: the
        segment from the better checkpoint, by mean return, is preferred).
    """
    if label_by not in ("teacher", "checkpoint"):
        raise InvalidArgumentError(f"label_by must be 'teacher' or 'checkpoint'; got {label_by!r}")
    n_pairs = check_int(n_pairs, "n_pairs", minimum=1)
    if segment_length is not None:
        segment_length = check_int(segment_length, "segment_length", minimum=1)
    seed = check_seed(seed)
    if isinstance(source, str):
        episodes = load_episodes(source, env_id=env_id, root=root, tiers=tiers, kind="checkpoints")
        source_name = source
    else:
        episodes = [e for e in source if tiers is None or e.metadata.get("tier") in tiers]
        source_name = "episodes"
        if not episodes:
            raise DatasetError(f"no episodes of tiers {list(tiers or [])}")
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[Episode]] = {}
    for e in episodes:
        groups.setdefault(e.metadata.get("checkpoint", 0), []).append(e)
    keys = sorted(groups)
    if len(keys) < 2 and label_by == "checkpoint":
        raise DatasetError("label_by='checkpoint' needs episodes of at least two checkpoints")
    L = segment_length or max(e.length for e in episodes)
    lengths = np.array([min(L, e.length) for e in episodes])
    # B-Pref's margin: the mean true return of a segment
    margin = float(np.mean([e.ret for e in episodes]) * np.mean(lengths)
                   / np.mean([e.length for e in episodes]))
    teacher_obj = as_teacher(teacher, margin=margin)
    quality = {k: float(np.mean([e.metadata.get("checkpoint_return", e.ret) for e in groups[k]]))
               for k in keys}

    out: dict[str, list] = {k: [] for k in ("oa", "aa", "ma", "ob", "ab", "mb", "y", "ra", "rb")}
    bar = tqdm(total=n_pairs, disable=not progress_bar, desc="preference pairs", mininterval=0.25)
    attempts, have = 0, 0
    while have < n_pairs:
        attempts += 1
        if attempts > 100 * n_pairs + 100:
            raise DatasetError(f"the teacher skipped nearly every query ({have} labels from "
                               f"{attempts} draws)")
        if len(keys) >= 2:
            ka, kb = rng.choice(len(keys), size=2, replace=False)
            ea, eb = groups[keys[ka]], groups[keys[kb]]
            a, b = ea[int(rng.integers(len(ea)))], eb[int(rng.integers(len(eb)))]
        else:
            pool = groups[keys[0]]
            a, b = (pool[int(i)] for i in rng.integers(len(pool), size=2))
        oa, aa, ra, ma = _segment(a, L, rng)
        ob, ab, rb, mb = _segment(b, L, rng)
        if label_by == "teacher":
            y = float(teacher_obj.label(ra, rb, rng, ma, mb))
            if np.isnan(y):
                continue
        else:
            qa, qb = quality[a.metadata.get("checkpoint", 0)], quality[b.metadata.get("checkpoint", 0)]
            y = 1.0 if qa > qb else 0.0 if qa < qb else 0.5
        for key, val in zip(("oa", "aa", "ma", "ob", "ab", "mb", "y", "ra", "rb"),
                            (oa, aa, ma, ob, ab, mb, y, (ra * ma).sum(), (rb * mb).sum()), strict=True):
            out[key].append(val)
        have += 1
        bar.update(1)
    bar.close()
    recorded_env = env_id if env_id is not None else None
    if recorded_env is None and isinstance(source, str):
        recorded_env = load_dataset(source, root=root).spec.env_spec.id
    info = {"source": source_name, "segment_length": segment_length, "tiers": list(tiers) if tiers else None,
            "label_by": label_by, "teacher": teacher_obj.config(), "seed": seed, "queries": attempts}
    return PreferencePairs(
        obs_a=np.stack(out["oa"]), act_a=np.stack(out["aa"]), mask_a=np.stack(out["ma"]),
        obs_b=np.stack(out["ob"]), act_b=np.stack(out["ab"]), mask_b=np.stack(out["mb"]),
        labels=np.array(out["y"]), returns_a=np.array(out["ra"]), returns_b=np.array(out["rb"]),
        env_id=recorded_env, info=info,
    )


# ------------------------------------------------------------------ command line
def _cmd_expert(args) -> int:
    kwargs = json.loads(args.sac_kwargs) if args.sac_kwargs else None
    run = train_expert(args.env, args.timesteps, args.out, n_checkpoints=args.checkpoints, sac_kwargs=kwargs,
                       seed=args.seed, progress_bar=not args.no_progress, overwrite=args.overwrite)
    print(f"expert on {args.env}: {len(run.checkpoints)} checkpoints in {run.out_dir}; "
          f"final {run.final_path}")
    return 0


def _cmd_rollouts(args) -> int:
    ds = make_checkpoint_rollouts(args.env, args.expert, steps_per_checkpoint=args.steps_per_checkpoint,
                                  dataset_id=args.dataset_id, seed=args.seed, root=args.root,
                                  overwrite=args.overwrite, deterministic=not args.stochastic,
                                  progress_bar=not args.no_progress, trust_remote_code=args.trust_remote_code)
    print(f"wrote Minari dataset {ds.spec.dataset_id!r}: {ds.total_episodes} episodes, "
          f"{ds.total_steps} steps")
    for tier, s in json.loads(ds.storage.metadata["prefgym_metadata"])["tiers"].items():
        print(f"  {tier:>6}: return {s['mean_return']:.2f} +- {s['std_return']:.2f} "
              f"({s['episodes']} episodes, {s['steps']} steps)")
    return 0


def _cmd_demos(args) -> int:
    if (args.policy is None) == (args.from_rollouts is None):
        raise DatasetError("give exactly one of --policy and --from-rollouts")
    ds = make_demonstrations(args.env, policy=args.policy, source=args.from_rollouts, tier=args.tier,
                             dataset_id=args.dataset_id, n_steps=args.steps, seed=args.seed, root=args.root,
                             overwrite=args.overwrite, progress_bar=not args.no_progress,
                             trust_remote_code=args.trust_remote_code)
    s = json.loads(ds.storage.metadata["prefgym_metadata"])["summary"]
    print(f"wrote Minari dataset {ds.spec.dataset_id!r}: {ds.total_episodes} episodes, "
          f"{ds.total_steps} steps, return {s['mean_return']:.2f} +- {s['std_return']:.2f}")
    return 0


def _cmd_preferences(args) -> int:
    source = args.rollouts or default_dataset_id(args.env, "checkpoints")
    tiers = None if args.tiers == "all" else args.tiers.split(",")
    pairs = build_preference_pairs(source, args.pairs, segment_length=args.segment_length or None,
                                   teacher=args.teacher, tiers=tiers, label_by=args.label_by, env_id=args.env,
                                   root=args.root, seed=args.seed, progress_bar=not args.no_progress)
    path = pairs.save(args.out, overwrite=args.overwrite)
    print(f"wrote {len(pairs)} preference pairs to {path} (label accuracy vs true return "
          f"{pairs.accuracy():.3f})")
    return 0


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum`` (a bad value is a one-line usage error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def add_data_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``data {expert, rollouts, demos, preferences}`` to an argparse subparsers object."""
    data = subparsers.add_parser("data", help="make control datasets: expert, rollouts, demos, preferences")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="STEP")

    def common(p, minari_args: bool = True):
        p.add_argument("--env", required=True, help="Gymnasium id, e.g. Hopper-v5")
        p.add_argument("--seed", type=_int_at_least(0), default=0)
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        if minari_args:
            p.add_argument("--root", default=None, help="Minari root (default $MINARI_DATASETS_PATH)")
            p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")

    trust_help = ("allow loading third-party SB3 zips, which SB3 un-pickles (this runs code stored in the "
                  "file); only for files from a source you trust")
    p = sub.add_parser("expert", help="train a SAC expert on the true reward, saving checkpoints")
    common(p, minari_args=False)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty run folder")
    p.add_argument("--timesteps", type=_int_at_least(1), required=True)
    p.add_argument("--checkpoints", type=_int_at_least(1), default=10, help="checkpoints to save; default 10")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--sac-kwargs", default=None, metavar="JSON", help="SAC constructor arguments")
    p.set_defaults(func=_cmd_expert)

    p = sub.add_parser("rollouts", help="roll out every checkpoint into a ranked Minari dataset")
    common(p)
    p.add_argument("--expert", required=True, help="expert run folder (from 'prefgym data expert')")
    p.add_argument("--steps-per-checkpoint", type=_int_at_least(1), default=30_000)
    p.add_argument("--dataset-id", default=None, help="default prefgym/<env>/checkpoints-v0")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: deterministic)")
    p.add_argument("--trust-remote-code", action="store_true", help=trust_help)
    p.set_defaults(func=_cmd_rollouts)

    p = sub.add_parser("demos", help="save demonstrations as a Minari dataset")
    common(p)
    p.add_argument("--policy", default=None, help="SB3 SAC zip to roll out")
    p.add_argument("--from-rollouts", default=None, metavar="DATASET_ID", help="copy a tier of this dataset")
    p.add_argument("--tier", default="high")
    p.add_argument("--steps", type=_int_at_least(1), default=10_000,
                   help="demonstration steps; default 10000")
    p.add_argument("--dataset-id", default=None, help="default prefgym/<env>/demos-v0")
    p.add_argument("--trust-remote-code", action="store_true", help=trust_help)
    p.set_defaults(func=_cmd_demos)

    p = sub.add_parser("preferences", help="build preference pairs from a ranked rollouts dataset")
    common(p)
    p.add_argument("--rollouts", default=None, metavar="DATASET_ID",
                   help="default prefgym/<env>/checkpoints-v0")
    p.add_argument("--pairs", type=_int_at_least(1), default=20_000)
    p.add_argument("--segment-length", type=_int_at_least(0), default=50, help="0: whole episodes")
    p.add_argument("--teacher", default="oracle", help="oracle, stochastic, myopic, mistake, skip, equal")
    p.add_argument("--tiers", default="low,medium", help="comma-separated tiers, or 'all'")
    p.add_argument("--label-by", default="teacher", choices=["teacher", "checkpoint"])
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=_cmd_preferences)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m prefgym.data.control STEP ...``; returns the exit code (2 on a dataset error)."""
    parser = argparse.ArgumentParser(prog="python -m prefgym.data.control")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    try:
        args = parser.parse_args(["data", *(argv if argv is not None else sys.argv[1:])])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except PrefgymError as exc:
        print(f"prefgym data {args.data_command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
