"""The Agent API shared by every prefgym agent (SB3's shape).

>>> from prefgym.games import rps
>>> from prefgym.agents import OMWU
>>> agent = OMWU(rps(), learning_rate=0.1, seed=0).learn(100)
>>> action, _ = agent.predict(None, deterministic=True)

Subclasses implement :meth:`_setup_learn`, :meth:`_iterate` and
:meth:`_finish_learn`, and list their state for :meth:`save`.
"""

from __future__ import annotations

import io
import json
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from prefgym.agents.callbacks import convert_callback
from prefgym.serialization import json_default

__all__ = ["BaseAgent"]


class BaseAgent(ABC):
    """Common training loop, callbacks, progress bar and persistence.

    Attributes
    ----------
    num_iterations
        Policy updates done so far (across calls to :meth:`learn`).
    """

    #: short name used by the CLI and the agent registry
    name: ClassVar[str] = ""

    def __init__(self, seed: int | None = None, verbose: int = 0):
        self.seed = seed
        self.verbose = verbose
        self.num_iterations = 0
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _positive(name: str, value: float) -> float:
        """``value`` as a float, or a ``ValueError`` naming ``name`` unless finite and > 0."""
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value}")
        return float(value)

    # ------------------------------------------------------------------ API
    def learn(
        self,
        total_iterations: int,
        callback=None,
        progress_bar: bool = False,
    ) -> BaseAgent:
        """Run ``total_iterations`` policy updates.

        Parameters
        ----------
        total_iterations
            Number of updates to run (continues from the current state).
        callback
            A :class:`~prefgym.agents.callbacks.BaseCallback`, a list of them, or
            a function ``f(locals, globals)``; returning False stops training.
        progress_bar
            Show a tqdm progress bar.
        """
        if int(total_iterations) != total_iterations or total_iterations < 0:
            raise ValueError(f"total_iterations must be a non-negative integer; got {total_iterations}")
        total_iterations = int(total_iterations)
        cb = convert_callback(callback)
        cb.init_callback(self)
        self._setup_learn(total_iterations)
        cb.on_training_start(locals(), globals())
        # a disabled tqdm still costs ~1 ms to build: only make one when it is shown
        from tqdm.auto import tqdm

        bar = tqdm(total=total_iterations, desc=type(self).__name__, unit="it",
                   mininterval=0.25) if progress_bar else None
        done = 0
        try:
            for _ in range(total_iterations):
                self._iterate(done)
                done += 1
                self.num_iterations += 1
                if bar is not None:
                    bar.update(1)
                if not cb.on_step():
                    break
        finally:
            if bar is not None:
                bar.close()
            self._finish_learn(done)
        cb.on_training_end()
        return self

    @abstractmethod
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """Return ``(action, state)`` as in SB3."""

    # ---------------------------------------------------------- subclassing
    @abstractmethod
    def _setup_learn(self, total_iterations: int) -> None:
        """Allocate per-call buffers."""

    @abstractmethod
    def _iterate(self, index: int) -> None:
        """One policy update; ``index`` counts updates within this call."""

    @abstractmethod
    def _finish_learn(self, done: int) -> None:
        """Trim buffers to the ``done`` updates actually made."""

    @abstractmethod
    def _get_hparams(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""

    @abstractmethod
    def _get_state(self) -> dict[str, np.ndarray]:
        """Arrays that, with the hyper-parameters, restore the agent exactly."""

    @abstractmethod
    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`_get_state`."""

    # ---------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Save hyper-parameters and state to a zip archive (``.zip`` appended if absent)."""
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "class": type(self).__name__,
            "hparams": self._get_hparams(),
            "num_iterations": self.num_iterations,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
        }
        buf = io.BytesIO()
        np.savez(buf, **self._get_state())
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("agent.json", json.dumps(meta, indent=2, default=json_default))
            zf.writestr("state.npz", buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path, env=None, **overrides) -> BaseAgent:
        """Load an agent saved by :meth:`save`; ``env`` replaces the saved game.

        ``overrides`` replace saved hyper-parameters (e.g. ``verbose``).
        """
        path = Path(path)
        if not path.exists() and path.with_suffix(path.suffix + ".zip").exists():
            path = path.with_suffix(path.suffix + ".zip")
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("agent.json"))
            with np.load(io.BytesIO(zf.read("state.npz"))) as data:
                state = {k: data[k] for k in data.files}
        if meta["class"] != cls.__name__ and cls is not BaseAgent:
            raise ValueError(f"{path} holds a {meta['class']} agent, not a {cls.__name__}")
        klass = cls
        if cls is BaseAgent:
            from prefgym.agents import AGENTS  # late import: registry of classes

            by_name = {c.__name__: c for c in AGENTS.values()}
            if meta["class"] not in by_name:
                raise ValueError(f"{path} holds an unknown agent class {meta['class']!r}")
            klass = by_name[meta["class"]]
        hparams = {**meta["hparams"], **overrides}
        agent = klass._from_saved(hparams, state, env)
        agent.num_iterations = meta["num_iterations"]
        agent.rng.bit_generator.state = meta["rng"]
        agent._set_state(state)
        return agent

    @classmethod
    def _from_saved(cls, hparams: dict, state: dict[str, np.ndarray], env) -> BaseAgent:
        return cls(env, **hparams)

