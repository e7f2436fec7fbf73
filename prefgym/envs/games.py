"""One resolver from anything that names a preference game to the game: :func:`game_of`.

Agents, the CLI and the reproductions take "a game" in many forms: the game itself, a
preference matrix or :class:`~prefgym.preferences.PreferenceModel`, a (wrapped)
prefgym env, or a registered env id with its ``gymnasium.make`` kwargs. :func:`game_of`
turns each into a :class:`~prefgym.games.protocol.PreferenceGame`, converting a one-state
matrix game into the equal ``H = 1`` Markov game where ``kind="markov"`` asks for one.
:func:`env_make_kwargs` is the keyword routing of the gridworld ids (generator arguments
given directly, ``{"seed": 3}``) that :func:`game_of` and the command line share.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from prefgym.errors import InvalidArgumentError, InvalidGameError, InvalidTypeError
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.matrix import MatrixGame
from prefgym.games.protocol import GAME_KINDS, PreferenceGame
from prefgym.preferences import PreferenceModel

__all__ = ["env_make_kwargs", "game_of"]

#: what ``game_of`` accepts, per ``kind`` (the start of its type error)
_ACCEPTS = {
    None: "a PreferenceGame (MatrixGame, TabularMarkovGame, MultiTurnGame), a preference matrix, a "
          "PreferenceModel, a prefgym env or an env id",
    "matrix": "a MatrixGame, a preference matrix, a PreferenceModel, a prefgym env or an env id",
    "markov": "a TabularMarkovGame, a MatrixGame (the H = 1 one-state game), a preference matrix, a "
              "PreferenceModel, a prefgym env or an env id",
    "multiturn": "a MultiTurnGame",
}


def env_make_kwargs(env_id: str, env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``gymnasium.make`` kwargs for ``env_id``, with a gridworld's generator arguments routed.

    On a gridworld id, keys that :class:`~prefgym.envs.gridworld.GridworldEnv` does not take
    go into ``generator_kwargs``: merged over ``generator_kwargs`` when given; otherwise,
    without an explicit ``generator`` or ``game``, over the id's default generator kwargs.
    So ``{"seed": 3}`` on ``prefgym/GridworldRandom-v0`` builds ``random_gridworld(seed=3)``.
    Other ids get ``env_kwargs`` unchanged.
    """
    from prefgym.envs.gridworld import GridworldEnv
    from prefgym.envs.registration import GRIDWORLD_ENV_KWARGS

    env_kwargs = dict(env_kwargs or {})
    if env_id not in GRIDWORLD_ENV_KWARGS:
        return env_kwargs
    accepted = set(inspect.signature(GridworldEnv.__init__).parameters) - {"self"}
    routed = {k: v for k, v in env_kwargs.items() if k not in accepted}
    if not routed:
        return env_kwargs
    kwargs = {k: v for k, v in env_kwargs.items() if k in accepted}
    if "generator_kwargs" in kwargs:
        base = kwargs["generator_kwargs"] or {}
    elif "generator" in kwargs or "game" in kwargs:
        base = {}
    else:
        base = GRIDWORLD_ENV_KWARGS[env_id].get("default_generator_kwargs") or {}
    if not isinstance(base, dict):
        raise InvalidArgumentError(f"generator_kwargs must be a JSON object (a dict); got {base!r}")
    kwargs["generator_kwargs"] = {**base, **routed}
    return kwargs


def game_of(obj: Any, kind: str | None = None, env_kwargs: Mapping[str, Any] | None = None) -> PreferenceGame:
    """The preference game named by ``obj``.

    Parameters
    ----------
    obj
        A game (:class:`~prefgym.games.protocol.PreferenceGame`), a preference matrix
        ``(n, n)`` / ``(..., n, n)`` or :class:`~prefgym.preferences.PreferenceModel` (a
        :class:`~prefgym.games.matrix.MatrixGame`), a (wrapped) env exposing
        ``env.unwrapped.game``, or a registered env id.
    kind
        ``None``: whatever game ``obj`` names. ``"matrix"``: a matrix game (else an error).
        ``"markov"``: a tabular Markov game; a single matrix game becomes the equal ``H = 1``
        one-state game (:meth:`TabularMarkovGame.from_matrix_game`). ``"multiturn"``: a
        multi-turn menu game.
    env_kwargs
        ``gymnasium.make`` kwargs when ``obj`` is an env id (gridworld generator arguments are
        routed, see :func:`env_make_kwargs`).

    Raises
    ------
    InvalidTypeError
        If ``obj`` names no game; the message lists what is accepted.
    InvalidArgumentError
        For an unknown ``kind``, ``env_kwargs`` without an env id, an env id that cannot be
        made or whose env exposes no game.
    InvalidGameError
        If the game is of another kind than asked (or a batch where one Markov game is asked),
        or a matrix is not a valid preference matrix.
    """
    if kind is not None and kind not in GAME_KINDS:
        raise InvalidArgumentError(f"kind must be None or one of {GAME_KINDS}; got {kind!r}")
    if env_kwargs is not None and not isinstance(obj, str):
        raise InvalidArgumentError(f"env_kwargs are for an env id; got them with a {type(obj).__name__}")
    if isinstance(obj, str):
        game, what = _game_of_env_id(obj, env_kwargs), f"environment {obj!r}"
    elif _is_game(obj):
        game, what = obj, type(obj).__name__
    elif isinstance(obj, np.ndarray | list | tuple | PreferenceModel):
        game, what = MatrixGame(obj), "the preference matrix"
    else:
        game = getattr(getattr(obj, "unwrapped", obj), "game", None)
        if not _is_game(game):
            raise InvalidTypeError(f"expected {_ACCEPTS[kind]}; got {type(obj).__name__}")
        what = f"the environment {type(obj).__name__}"
    return _as_kind(game, kind, what)


def _is_game(obj: Any) -> bool:
    return isinstance(obj, PreferenceGame) and getattr(obj, "kind", None) in GAME_KINDS


def _game_of_env_id(env_id: str, env_kwargs: Mapping[str, Any] | None) -> PreferenceGame:
    import gymnasium

    import prefgym.envs  # noqa: F401  (registers the ids)

    kwargs = dict(env_kwargs or {})
    try:
        env = gymnasium.make(env_id, **env_make_kwargs(env_id, kwargs))
    except Exception as exc:  # any failure to build the env is a bad id or bad kwargs
        raise InvalidArgumentError(f"cannot make environment {env_id!r} with kwargs {kwargs}: "
                                   f"{type(exc).__name__}: {exc}") from exc
    try:
        game = getattr(env.unwrapped, "game", None)
    finally:
        env.close()
    if not _is_game(game):
        raise InvalidArgumentError(f"environment {env_id!r} exposes no preference game (env.unwrapped.game)")
    return game


def _as_kind(game: PreferenceGame, kind: str | None, what: str) -> PreferenceGame:
    if kind is None or game.kind == kind:
        return game
    if kind == "markov" and isinstance(game, MatrixGame):
        if game.batch_shape:
            raise InvalidGameError(f"a Markov game is one game; {what} is a batch of matrix games of shape "
                                   f"{game.batch_shape}")
        return TabularMarkovGame.from_matrix_game(game)
    names = {"matrix": "matrix", "markov": "Markov", "multiturn": "multi-turn"}
    raise InvalidGameError(f"{what} is a {names[game.kind]} game ({game!r}); a {names[kind]} game is needed")
