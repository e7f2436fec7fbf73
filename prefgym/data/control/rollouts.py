"""Rollout datasets of 004 (App. A.2.1): ranked checkpoint rollouts and demonstrations, saved to Minari.

:func:`make_checkpoint_rollouts` rolls out every checkpoint of an expert run and splits
the checkpoints by mean return into quality tiers ``low``, ``medium``, ``high``
(episode metadata ``checkpoint``, ``checkpoint_steps``, ``checkpoint_return``, ``tier``,
``return``). :func:`make_demonstrations` rolls out a policy (an expert zip, an SB3
model, a scripted controller) or copies the ``high`` tier of a rollouts dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from prefgym.data.control.episodes import Episode, dataset_summary
from prefgym.data.control.expert import list_checkpoints
from prefgym.data.control.minari_io import default_dataset_id, load_episodes, write_dataset
from prefgym.data.control.policies import collect_episodes
from prefgym.errors import DatasetError, InvalidArgumentError
from prefgym.validation import check_int

__all__ = ["TIER_NAMES", "make_checkpoint_rollouts", "make_demonstrations"]

TIER_NAMES = ("low", "medium", "high")


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
