"""Helpers shared by the command modules (:mod:`prefgym.cli`, :mod:`prefgym.cli_llm`, :mod:`prefgym.cli_sb3`).

The sub-command modules import from here, never from :mod:`prefgym.cli` (which imports them).
"""

from __future__ import annotations

import json
from typing import Any

from prefgym.errors import PrefgymError

__all__ = ["CLIError", "env_ids", "fmt", "gridworld_kwargs", "parse_env_kwargs"]


class CLIError(PrefgymError):
    """A user error: reported in one line with exit code 2."""


def env_ids() -> list[str]:
    """Registered Gymnasium ids under ``prefgym/`` (empty if ``prefgym.envs`` is absent)."""
    try:
        import gymnasium

        import prefgym.envs  # noqa: F401  (registers the ids)
    except ImportError:
        return []
    return sorted(k for k in gymnasium.registry if k.startswith("prefgym/"))


def gridworld_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Route ``env_kwargs`` keys that :class:`GridworldEnv` does not take into ``generator_kwargs``.

    :func:`prefgym.envs.games.env_make_kwargs` (the env side owns the routing): so
    ``{"seed": 3}`` on ``prefgym/GridworldRandom-v0`` builds ``random_gridworld(seed=3)``.
    Other ids are returned unchanged.
    """
    from prefgym.envs.games import env_make_kwargs

    return env_make_kwargs(env_id, env_kwargs)


def parse_env_kwargs(raw: str | None) -> dict[str, Any] | None:
    """``--env-kwargs`` as a dict (None when absent), or a one-line :class:`CLIError`."""
    if raw is None:
        return None
    try:
        env_kwargs = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CLIError(f"--env-kwargs is not valid JSON: {exc}") from None
    if not isinstance(env_kwargs, dict):
        raise CLIError(f"--env-kwargs must be a JSON object; got {raw!r}")
    return env_kwargs


def fmt(x: float) -> str:
    """``x`` at 3 significant digits."""
    return f"{float(x):.3g}"
