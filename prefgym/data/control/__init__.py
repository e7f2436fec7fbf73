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

The modules, each importing only those above it:

- :mod:`~prefgym.data.control.episodes`: :class:`Episode`, :func:`flatten_episodes`,
  :class:`PreferencePairs`, :func:`dataset_summary`.
- :mod:`~prefgym.data.control.policies`: :func:`scripted_policy`, :func:`load_policy`,
  :func:`collect_episodes`.
- :mod:`~prefgym.data.control.minari_io`: :func:`write_dataset`, :func:`load_dataset`,
  :func:`load_episodes`, :func:`minari_root`, :func:`default_dataset_id`.
- :mod:`~prefgym.data.control.expert`: :func:`train_expert`, :func:`list_checkpoints`.
- :mod:`~prefgym.data.control.rollouts`: :func:`make_checkpoint_rollouts`,
  :func:`make_demonstrations`.
- :mod:`~prefgym.data.control.preferences`: :func:`build_preference_pairs`.
- :mod:`~prefgym.data.control.cli`: :func:`add_data_commands`, :func:`main`.

>>> pairs = build_preference_pairs(episodes, n_pairs=1000, segment_length=50, teacher="oracle")
>>> pairs.save("prefs.npz"); PreferencePairs.load("prefs.npz", env_id="Hopper-v5")
"""

from prefgym.data.control.cli import add_data_commands, main
from prefgym.data.control.episodes import Episode, PreferencePairs, dataset_summary, flatten_episodes
from prefgym.data.control.expert import ExpertRun, list_checkpoints, train_expert
from prefgym.data.control.minari_io import (
    default_dataset_id,
    load_dataset,
    load_episodes,
    minari_root,
    write_dataset,
)
from prefgym.data.control.policies import _SCRIPTED as _SCRIPTED  # the scripted tasks, read by reproductions
from prefgym.data.control.policies import collect_episodes, load_policy, scripted_policy
from prefgym.data.control.preferences import build_preference_pairs
from prefgym.data.control.rollouts import TIER_NAMES, make_checkpoint_rollouts, make_demonstrations
from prefgym.errors import DatasetError

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
    "load_dataset",
    "load_episodes",
    "load_policy",
    "main",
    "make_checkpoint_rollouts",
    "make_demonstrations",
    "minari_root",
    "scripted_policy",
    "train_expert",
    "write_dataset",
]
