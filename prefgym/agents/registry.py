"""The one registry: every family's agent class of every spec, and ``make_agent``.

:data:`prefgym.algorithms.SPECS` lists the algorithms; this module turns a spec and a
family into a class: the hand-written implementation the spec names, or the generic
adapter built from its step (:func:`~prefgym.agents.tabular.spec_agent.tabular_class`,
:func:`~prefgym.agents.markov.spec_agent.markov_class`, and for language models
:mod:`prefgym.agents.llm.registry`). ``make_agent(name, game)`` picks the family from
the game it is given.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib import import_module
from typing import Any

from prefgym.algorithms import FAMILIES, AlgorithmSpec, get_spec
from prefgym.errors import InvalidArgumentError

__all__ = ["agent_class", "family_of", "make_agent"]


def _import(path: str) -> type:
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)


def agent_class(name: str | AlgorithmSpec, family: str) -> type:
    """The class that runs algorithm ``name`` in ``family``: a tabular or Markov agent, or an
    LLM trainer (:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` subclass)."""
    spec = name if isinstance(name, AlgorithmSpec) else get_spec(name)
    if family not in FAMILIES:
        raise InvalidArgumentError(f"unknown family {family!r}; choose from {FAMILIES}")
    if family not in spec.families:
        raise InvalidArgumentError(f"{spec.name} does not run on {family} games; it runs on "
                                   f"{list(spec.families)}")
    if family == "llm":
        from prefgym.optional import require

        require("torch", extra="llm", purpose=f"the language-model form of {spec.name}")
        return import_module("prefgym.agents.llm.registry").trainer_class(spec)
    if family == "control":
        from prefgym.optional import require

        for module in ("torch", "stable_baselines3"):
            require(module, extra="sb3", purpose=f"the control form of {spec.name}")
        return _import(spec.implementations[family])
    import_module(f"prefgym.agents.{family}")  # the named classes of the package come first
    if family in spec.implementations:
        return _import(spec.implementations[family])
    if family == "tabular":
        from prefgym.agents.tabular.spec_agent import tabular_class

        return tabular_class(spec)
    from prefgym.agents.markov.spec_agent import markov_class

    return markov_class(spec)


def family_of(game: Any, spec: AlgorithmSpec | None = None) -> str:
    """The family of agents that plays ``game``: ``"llm"`` for a language-model policy, ``"markov"``
    for a Markov game (or an env of one), ``"control"`` for an env with no game of ours (a
    MuJoCo preference task), else ``"tabular"`` (a matrix game, a preference matrix or model,
    an env of one); a one-state matrix game goes to ``"markov"`` when ``spec`` has no tabular form."""
    if hasattr(game, "generate") or hasattr(game, "response_ids"):  # LMPolicy / MenuPolicy
        return "llm"
    from prefgym.games.markov import TabularMarkovGame

    inner = game
    if isinstance(game, str):
        import gymnasium as gym

        import prefgym.envs  # noqa: F401  (registers the ids)

        env = gym.make(game)
        inner = getattr(env.unwrapped, "game", None)
        env.close()
    elif hasattr(game, "action_space"):  # an env
        inner = getattr(game.unwrapped, "game", None)
    if inner is None:
        return "control"  # an env without a preference game of ours (e.g. a MuJoCo preference task)
    if isinstance(inner, TabularMarkovGame):
        return "markov"
    if spec is not None and "tabular" not in spec.families and "markov" in spec.families:
        return "markov"
    return "tabular"


def make_agent(name: str, game: Any, config: Any = None, **kwargs: Any):
    """Build algorithm ``name`` for ``game``; the family follows from the game.

    Parameters
    ----------
    name
        An algorithm of :data:`~prefgym.algorithms.SPECS` (or an alias: ``md_markov``, ``omwu-llm``).
    game
        A matrix game / preference matrix / env (tabular), a Markov game or gridworld env
        (Markov), or a language-model policy (LLM: pass ``judge=`` and ``prompts=`` too).
    config
        An instance of ``get_spec(name).config_class(family)`` (its fields become keyword
        arguments; ``kwargs`` override them).
    **kwargs
        The agent's keyword arguments: ``learning_rate`` (``eta`` for LLM trainers), the
        spec's hyper-parameters, ``seed``, ...

    Examples
    --------
    >>> from prefgym.agents.registry import make_agent
    >>> make_agent("omwu", [[0.5, 0.9], [0.1, 0.5]]).learn(10, progress_bar=False).policy.round(3).tolist()
    [1.0, 0.0]
    >>> type(make_agent("mpo", "prefgym/Gridworld-v0")).__name__
    'MagneticMPO'
    """
    spec = get_spec(name)
    family = family_of(game, spec)
    if family not in spec.families:
        raise InvalidArgumentError(f"{spec.name} does not run on {family} games (it runs on "
                                   f"{list(spec.families)}); got a {type(game).__name__}")
    cls = agent_class(spec, family)
    if config is not None:
        if not isinstance(config, spec.config_class(family)):
            raise InvalidArgumentError(f"config must be a {spec.config_class(family).__name__} "
                                       f"(get_spec({spec.name!r}).config_class({family!r})); got "
                                       f"{type(config).__name__}")
        kwargs = {**asdict(config), **kwargs}
    if family == "llm":
        return cls(game, kwargs.pop("judge", None), kwargs.pop("prompts", None), **kwargs)
    return cls(game, **kwargs)
