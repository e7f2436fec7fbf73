"""Callbacks in Stable-Baselines3's shape: ``on_step() -> bool`` stops when False."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "BaseCallback",
    "CallbackList",
    "ConvertCallback",
    "RecordPolicy",
    "StopTrainingOnGap",
    "convert_callback",
]


class BaseCallback:
    """Base class; override ``_on_step`` (and optionally the other hooks)."""

    def __init__(self, verbose: int = 0):
        self.verbose = verbose
        self.agent: Any = None
        self.n_calls = 0
        self.locals: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}

    @property
    def num_iterations(self) -> int:
        return self.agent.num_iterations

    def init_callback(self, agent) -> None:
        self.agent = agent
        self._init_callback()

    def on_training_start(self, locals_: dict, globals_: dict) -> None:
        self.locals, self.globals = locals_, globals_
        self._on_training_start()

    def on_step(self) -> bool:
        self.n_calls += 1
        return self._on_step()

    def on_training_end(self) -> None:
        self._on_training_end()

    def _init_callback(self) -> None:
        pass

    def _on_training_start(self) -> None:
        pass

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        pass


class CallbackList(BaseCallback):
    """Run several callbacks; training stops if any returns False."""

    def __init__(self, callbacks: Sequence[BaseCallback]):
        super().__init__()
        self.callbacks = list(callbacks)

    def _init_callback(self) -> None:
        for cb in self.callbacks:
            cb.init_callback(self.agent)

    def _on_training_start(self) -> None:
        for cb in self.callbacks:
            cb.on_training_start(self.locals, self.globals)

    def _on_step(self) -> bool:
        keep = True
        for cb in self.callbacks:
            keep = cb.on_step() and keep
        return keep

    def _on_training_end(self) -> None:
        for cb in self.callbacks:
            cb.on_training_end()


class ConvertCallback(BaseCallback):
    """Wrap a function ``f(locals, globals) -> bool | None`` (None means go on)."""

    def __init__(self, fn: Callable[[dict, dict], bool | None]):
        super().__init__()
        self.fn = fn

    def _on_step(self) -> bool:
        return self.fn(self.locals, self.globals) is not False


class StopTrainingOnGap(BaseCallback):
    """Stop once the recorded duality gap falls below ``threshold``.

    ``which`` is ``"last"`` (last iterate) or ``"average"``; with a batch of
    games all of them must be below the threshold.
    """

    def __init__(self, threshold: float, which: str = "last", verbose: int = 0):
        super().__init__(verbose)
        if which not in ("last", "average"):
            raise ValueError(f"which must be 'last' or 'average'; got {which!r}")
        self.threshold, self.which = float(threshold), which

    def _on_step(self) -> bool:
        gap = self.agent.current_gap(self.which)
        if (gap <= self.threshold).all():
            if self.verbose:
                print(f"gap {float(gap.max()):.3g} <= {self.threshold:g} at iteration "
                      f"{self.num_iterations}: stopping")
            return False
        return True


class _NoCallback(BaseCallback):
    pass


def convert_callback(callback) -> BaseCallback:
    """None, a callback, a list of callbacks, or a plain function -> BaseCallback."""
    if callback is None:
        return _NoCallback()
    if isinstance(callback, BaseCallback):
        return callback
    if isinstance(callback, list | tuple):
        return CallbackList([convert_callback(c) for c in callback])
    if callable(callback):
        return ConvertCallback(callback)
    raise TypeError(f"callback must be a BaseCallback, a list of them or a function; got {callback!r}")


class RecordPolicy(BaseCallback):
    """Record copies of ``agent.policy``: the start of training, then every ``every`` updates.

    ``policies`` holds the arrays and ``iterations`` the update counts at which
    they were taken (``agent.num_iterations``), e.g. for simplex trajectories.
    """

    def __init__(self, every: int = 1, verbose: int = 0):
        super().__init__(verbose)
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer; got {every}")
        self.every = int(every)
        self.policies: list = []
        self.iterations: list[int] = []

    def _record(self) -> None:
        self.policies.append(self.agent.policy.copy())
        self.iterations.append(self.num_iterations)

    def _on_training_start(self) -> None:
        if not self.iterations or self.iterations[-1] != self.num_iterations:
            self._record()

    def _on_step(self) -> bool:
        if self.num_iterations % self.every == 0:
            self._record()
        return True
