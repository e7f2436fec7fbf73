"""A fixed-length array view of the text envs, for learners that need arrays (SB3's PPO, A2C, ...).

The text envs (``prefgym/Dialogue-v0``, ``prefgym/Reasoning-v0``) observe and
act in ``gymnasium.spaces.Text``, which SB3 does not support. :class:`TokenIdView`
maps both to arrays of character ids, one token per character of the
space's charset (``0`` is padding / end of text, ``i + 1`` the ``i``-th
character of ``space.characters``):

- observation: ``Box(0, n_obs_chars, (obs_length,), int64)``, the last
  ``obs_length`` characters of the prompt, right-aligned (left-padded with 0),
  so the newest text always sits at the end;
- action: ``MultiDiscrete([n_action_chars + 1] * action_length)``; the
  utterance is the characters before the first ``0``.

>>> import gymnasium
>>> from stable_baselines3.common.env_util import make_vec_env
>>> venv = make_vec_env("prefgym/Reasoning-v0", n_envs=2, wrapper_class=TokenIdView)

Any action array is a valid utterance (the env strips surrounding
whitespace), so random and learnt actions never raise. ``info["text_action"]``
is the utterance played. A model that reads text (an ``LMPolicy``) should use
the text envs directly.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from prefgym.errors import InvalidActionError

__all__ = ["TokenIdView"]


def _check_length(name: str, value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= limit:
        raise ValueError(f"{name} must be an integer in [1, {limit}]; got {value!r}")
    return int(value)


class TokenIdView(gymnasium.Wrapper, RecordConstructorArgs):
    """Character-id arrays in place of the ``Text`` observations and actions of a text env.

    Parameters
    ----------
    env
        A Gymnasium env whose observation and action spaces are ``gymnasium.spaces.Text``.
    obs_length
        Characters of each observation kept (its tail); default the observation
        space's ``max_length`` (the env's ``context_window``: nothing is lost).
    action_length
        Most characters per utterance; default the action space's ``max_length``.
    """

    def __init__(self, env: gymnasium.Env, obs_length: int | None = None, action_length: int | None = None):
        RecordConstructorArgs.__init__(self, obs_length=obs_length, action_length=action_length)
        gymnasium.Wrapper.__init__(self, env)
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, spaces.Text) or not isinstance(act_space, spaces.Text):
            raise TypeError("TokenIdView needs Text observation and action spaces; got "
                            f"{type(obs_space).__name__} and {type(act_space).__name__}")
        self.obs_length = _check_length("obs_length", obs_space.max_length if obs_length is None
                                        else obs_length, obs_space.max_length)
        self.action_length = _check_length("action_length", act_space.max_length if action_length is None
                                           else action_length, act_space.max_length)
        self.obs_chars = obs_space.characters
        self.action_chars = act_space.characters
        self._obs_index = {c: i + 1 for i, c in enumerate(self.obs_chars)}
        self._action_table = np.array(["", *self.action_chars], dtype=object)
        self.observation_space = spaces.Box(0, len(self.obs_chars), (self.obs_length,), np.int64)
        self.action_space = spaces.MultiDiscrete(np.full(self.action_length, len(self.action_chars) + 1))

    def encode_observation(self, text: str) -> np.ndarray:
        """The ids of the last ``obs_length`` characters of ``text``, right-aligned (0 = padding)."""
        tail = text[-self.obs_length:] if text else ""
        ids = np.zeros(self.obs_length, dtype=np.int64)
        if tail:
            ids[-len(tail):] = [self._obs_index[c] for c in tail]
        return ids

    def decode_action(self, ids) -> str:
        """The utterance of an action array: its characters before the first ``0``."""
        arr = np.asarray(ids)
        n = len(self.action_chars)
        if (arr.shape != (self.action_length,) or arr.dtype.kind not in "iu"
                or (arr.size and (arr.min() < 0 or arr.max() > n))):
            raise InvalidActionError(f"action must be {self.action_length} integer ids in [0, {n}] (the "
                                     f"space {self.action_space}); got {ids!r:.80}")
        ids = arr
        stop = np.flatnonzero(ids == 0)
        ids = ids[: stop[0]] if stop.size else ids
        return "".join(self._action_table[ids])

    def encode_action(self, text: str) -> np.ndarray:
        """The action array of an utterance (for scripted players); raises ValueError if it does not fit."""
        if len(text) > self.action_length:
            raise ValueError(f"utterance of {len(text)} characters; action_length is {self.action_length}")
        index = {c: i + 1 for i, c in enumerate(self.action_chars)}
        bad = next((c for c in text if c not in index), None)
        if bad is not None:
            raise ValueError(f"character {bad!r} is outside the action charset")
        ids = np.zeros(self.action_length, dtype=np.int64)
        ids[: len(text)] = [index[c] for c in text]
        return ids

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self.encode_observation(obs), info

    def step(self, action):
        text = self.decode_action(action)
        obs, reward, terminated, truncated, info = self.env.step(text)
        return self.encode_observation(obs), reward, terminated, truncated, {**info, "text_action": text}
