"""Preference pairs of 004 (App. A.2.1): segments from episodes of different checkpoints, labelled.

:func:`build_preference_pairs` draws pairs of segments from episodes of two different
checkpoints (004: the ``low`` and ``medium`` tiers) and labels them by a synthetic
teacher over the true segment return (:mod:`prefgym.teachers`) or, as T-REX does, by
checkpoint rank, into :class:`~prefgym.data.control.episodes.PreferencePairs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from prefgym.data.control.episodes import Episode, PreferencePairs
from prefgym.data.control.minari_io import load_dataset, load_episodes
from prefgym.errors import DatasetError, InvalidArgumentError
from prefgym.teachers import SyntheticTeacher, as_teacher
from prefgym.validation import check_int, check_seed

__all__ = ["build_preference_pairs"]


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
