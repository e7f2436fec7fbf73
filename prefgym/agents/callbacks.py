"""Callbacks with Stable-Baselines3's API: ``on_step() -> bool`` stops training when False.

Every prefgym agent's ``learn`` accepts SB3's own callbacks (``CheckpointCallback``,
``EvalCallback``, ``StopTrainingOnMaxEpisodes``, ``CallbackList``, ...), prefgym's
callbacks below, lists mixing both, and plain functions ``f(locals, globals)``.
SB3 is optional (it pulls in torch), so this module does not import it:
:class:`BaseCallback` has SB3's attributes and hooks (``model``, ``num_timesteps``,
``n_calls``, ``locals``, ``parent``, ``training_env``, ``logger``, ``init_callback``,
``on_training_start``, ``on_rollout_start``, ``on_step``, ``update_locals``,
``on_rollout_end``, ``on_training_end``) and, once SB3 has been imported, is
registered as a virtual subclass of SB3's ``BaseCallback``, so SB3 algorithms take
prefgym callbacks too. Other callbacks are used by duck typing.

What a prefgym agent hands its callbacks, per update (one timestep): ``model`` (the
agent, with ``num_timesteps``, ``logger``, ``get_env()``, ``save(path)``), and
``locals`` with ``dones`` (one episode ends per update: ``[True]``), ``infos`` (one
dict of the update's metrics), ``total_timesteps`` and ``self``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "BaseCallback",
    "CallbackList",
    "ConvertCallback",
    "RecordPolicy",
    "StopTrainingOnGap",
    "convert_callback",
    "is_callback",
]

_SB3_CALLBACKS = "stable_baselines3.common.callbacks"


def _register_with_sb3() -> None:
    """Make ``isinstance(cb, SB3's BaseCallback)`` true for prefgym callbacks (once SB3 is loaded)."""
    mod = sys.modules.get(_SB3_CALLBACKS)
    if mod is not None and not getattr(mod, "_prefgym_registered", False):
        mod.BaseCallback.register(BaseCallback)
        mod._prefgym_registered = True


class BaseCallback:
    """Base class with SB3's API; override ``_on_step`` (and optionally the other ``_on_*`` hooks).

    Attributes
    ----------
    model
        The agent being trained (``agent`` is an alias).
    num_timesteps
        ``model.num_timesteps`` at the last hook (an update is a timestep).
    n_calls
        Number of ``on_step`` calls.
    """

    def __init__(self, verbose: int = 0):
        _register_with_sb3()
        self.verbose = verbose
        self.model: Any = None
        self.n_calls = 0
        self.num_timesteps = 0
        self.locals: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.parent: BaseCallback | None = None

    @property
    def agent(self):
        """The agent being trained (SB3 calls it ``model``)."""
        return self.model

    @property
    def num_iterations(self) -> int:
        """Updates the agent has made in all (not reset between ``learn`` calls)."""
        return getattr(self.model, "num_iterations", self.model.num_timesteps)

    @property
    def training_env(self):
        """``model.get_env()``: a VecEnv of the agent's game where it has one."""
        env = self.model.get_env()
        if env is None:
            raise AttributeError(f"{type(self.model).__name__}.get_env() returned None: this callback needs "
                                 "an environment, and the agent has none")
        return env

    @property
    def logger(self):
        return self.model.logger

    def init_callback(self, model) -> None:
        self.model = model
        self._init_callback()

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        self.locals, self.globals = locals_, globals_
        self.num_timesteps = self.model.num_timesteps
        self._on_training_start()

    def on_rollout_start(self) -> None:
        self._on_rollout_start()

    def on_step(self) -> bool:
        self.n_calls += 1
        self.num_timesteps = self.model.num_timesteps
        return self._on_step()

    def on_rollout_end(self) -> None:
        self._on_rollout_end()

    def on_training_end(self) -> None:
        self._on_training_end()

    def update_locals(self, locals_: dict[str, Any]) -> None:
        self.locals.update(locals_)
        self.update_child_locals(locals_)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        pass

    def _init_callback(self) -> None:
        pass

    def _on_training_start(self) -> None:
        pass

    def _on_rollout_start(self) -> None:
        pass

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        pass

    def _on_training_end(self) -> None:
        pass


class CallbackList(BaseCallback):
    """Run several callbacks (prefgym's, SB3's, functions) in order; training stops if any returns False."""

    def __init__(self, callbacks: Sequence):
        super().__init__()
        self.callbacks = [convert_callback(c) for c in callbacks if c is not None]

    def _init_callback(self) -> None:
        for cb in self.callbacks:
            cb.init_callback(self.model)
            cb.parent = self.parent

    def _on_training_start(self) -> None:
        for cb in self.callbacks:
            cb.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self) -> None:
        for cb in self.callbacks:
            cb.on_rollout_start()

    def _on_step(self) -> bool:
        keep = True
        for cb in self.callbacks:
            keep = cb.on_step() and keep
        return keep

    def _on_rollout_end(self) -> None:
        for cb in self.callbacks:
            cb.on_rollout_end()

    def _on_training_end(self) -> None:
        for cb in self.callbacks:
            cb.on_training_end()

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.update_locals(locals_)


class ConvertCallback(BaseCallback):
    """Wrap a function ``f(locals, globals) -> bool | None`` (None means go on)."""

    def __init__(self, fn: Callable[[dict, dict], bool | None], verbose: int = 0):
        super().__init__(verbose)
        self.fn = fn

    def _on_step(self) -> bool:
        return self.fn(self.locals, self.globals) is not False


class StopTrainingOnGap(BaseCallback):
    """Stop once the agent's duality gap falls below ``threshold``.

    ``which`` is ``"last"`` (last iterate) or ``"average"``; with a batch of
    games all of them must be below the threshold. Works on agents with
    ``current_gap(which)`` (tabular and Markov agents).
    """

    def __init__(self, threshold: float, which: str = "last", verbose: int = 0):
        super().__init__(verbose)
        if which not in ("last", "average"):
            from prefgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"which must be 'last' or 'average'; got {which!r}")
        self.threshold, self.which = float(threshold), which

    def _on_step(self) -> bool:
        gap = self.model.current_gap(self.which)
        if (gap <= self.threshold).all():
            if self.verbose:
                print(f"gap {float(gap.max()):.3g} <= {self.threshold:g} at iteration "
                      f"{self.num_iterations}: stopping")
            return False
        return True


class RecordPolicy(BaseCallback):
    """Record copies of ``agent.policy``: the start of training, then every ``every`` updates.

    ``policies`` holds the arrays and ``iterations`` the update counts at which
    they were taken (``agent.num_iterations``), e.g. for simplex trajectories.
    """

    def __init__(self, every: int = 1, verbose: int = 0):
        super().__init__(verbose)
        if int(every) != every or every < 1:
            from prefgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"every must be a positive integer; got {every}")
        self.every = int(every)
        self.policies: list = []
        self.iterations: list[int] = []

    def _record(self) -> None:
        self.policies.append(self.model.policy.copy())
        self.iterations.append(self.num_iterations)

    def _on_training_start(self) -> None:
        if not self.iterations or self.iterations[-1] != self.num_iterations:
            self._record()

    def _on_step(self) -> bool:
        if self.num_iterations % self.every == 0:
            self._record()
        return True


def is_callback(obj) -> bool:
    """Whether ``obj`` has the callback interface (prefgym's or SB3's ``BaseCallback``)."""
    return all(callable(getattr(obj, m, None)) for m in ("init_callback", "on_training_start", "on_step",
                                                         "on_training_end"))


def convert_callback(callback) -> BaseCallback | None:
    """None, a callback (prefgym's or SB3's), a list of them or a function ``f(locals, globals)``.

    Returns None for None, the callback itself, a :class:`CallbackList` or a
    :class:`ConvertCallback`.

    Raises
    ------
    InvalidTypeError
        For anything else.
    """
    if callback is None:
        return None
    if is_callback(callback):
        return callback
    if isinstance(callback, list | tuple):
        return CallbackList([convert_callback(c) for c in callback if c is not None])
    if callable(callback):
        return ConvertCallback(callback)
    from prefgym.errors import InvalidTypeError

    raise InvalidTypeError("callback must be a BaseCallback (prefgym's or stable-baselines3's), a list of "
                           f"them or a function f(locals, globals); got {type(callback).__name__}")
