"""Episodes in and out of Minari datasets.

Datasets live under Minari's root: ``$MINARI_DATASETS_PATH`` if set, else
``~/.minari/datasets``; every function takes ``root=`` to override it (:func:`minari_root`).
Ids default to ``prefgym/<env id>/<kind>-v0`` (:func:`default_dataset_id`). A missing
dataset, or one recorded on another env, raises :class:`~prefgym.errors.DatasetError`
naming it. Minari is imported only when a dataset is read or written, and written with
``minari.create_dataset_from_buffers`` in Arrow format (no ``jax`` / ``h5py`` needed),
staged beside the root and moved into place when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.data.control.episodes import Episode
from prefgym.errors import DatasetError
from prefgym.serialization import json_default

__all__ = ["default_dataset_id", "load_dataset", "load_episodes", "minari_root", "write_dataset"]


def default_dataset_id(env_id: str, kind: str) -> str:
    """``prefgym/<env id>/<kind>-v0``: e.g. ``prefgym/Hopper-v5/demos-v0``."""
    return f"prefgym/{env_id.replace('/', '-')}/{kind}-v0"


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
