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
from tqdm.auto import tqdm

from prefgym.agents.callbacks import convert_callback
from prefgym.errors import AgentLoadError, InvalidTypeError
from prefgym.fileio import atomic_write
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
        bar = tqdm(total=total_iterations, disable=not progress_bar, desc=type(self).__name__,
                   unit="it", mininterval=0.25)
        done = 0
        try:
            for _ in range(total_iterations):
                self._iterate(done)
                done += 1
                self.num_iterations += 1
                bar.update(1)
                if not cb.on_step():
                    break
        finally:
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
        """Save hyper-parameters (JSON) and state (``.npz``, no pickles) to a zip, atomically.

        ``.zip`` is appended if absent. The file carries its format and version
        (``agent.json``: ``"format": "prefgym.agent"``, ``"format_version"``).
        """
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip")
        meta = {
            "format": AGENT_FORMAT,
            "format_version": AGENT_FORMAT_VERSION,
            "class": type(self).__name__,
            "hparams": self._get_hparams(),
            "num_iterations": self.num_iterations,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
        }
        state = {k: np.asarray(v) for k, v in self._get_state().items()}
        pickled = sorted(k for k, v in state.items() if v.dtype.hasobject)
        if pickled:
            raise InvalidTypeError(f"state arrays {pickled} hold Python objects, which only pickle "
                                   "could store")
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **state)
        with atomic_write(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("agent.json", json.dumps(meta, indent=2, default=json_default))
            zf.writestr("state.npz", buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path, env=None, **overrides) -> BaseAgent:
        """Load an agent saved by :meth:`save`; ``env`` replaces the saved game.

        ``overrides`` replace saved hyper-parameters (e.g. ``verbose``). Nothing in the
        file is un-pickled.

        Raises
        ------
        AgentLoadError
            The file is missing, empty, truncated or corrupted, holds another class or an
            unknown one, was written by a newer prefgym, or its fields have wrong types.
        """
        path = Path(path)
        if not path.exists() and path.with_suffix(path.suffix + ".zip").exists():
            path = path.with_suffix(path.suffix + ".zip")
        meta, state = _read_agent_zip(path)
        where = str(path)
        if meta["class"] != cls.__name__ and cls is not BaseAgent:
            raise AgentLoadError(f"{where} holds a {meta['class']} agent, not a {cls.__name__}")
        klass = cls
        if cls is BaseAgent:
            from prefgym.agents import AGENTS  # late import: registry of classes

            by_name = {c.__name__: c for c in AGENTS.values()}
            if meta["class"] not in by_name:
                raise AgentLoadError(f"{where} holds an unknown agent class {meta['class']!r}; "
                                     f"known: {sorted(by_name)}")
            klass = by_name[meta["class"]]
        _check_hparam_types(klass, meta["hparams"], where)
        hparams = {**meta["hparams"], **overrides}
        try:
            agent = klass._from_saved(hparams, state, env)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise AgentLoadError(f"{where}: cannot rebuild {klass.__name__} from its saved hyper-parameters "
                                 f"and state ({type(exc).__name__}: {exc})") from None
        try:
            agent.rng.bit_generator.state = meta["rng"]
            agent._set_state(state)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise AgentLoadError(f"{where}: the saved state does not fit {klass.__name__} "
                                 f"({type(exc).__name__}: {exc})") from None
        agent.num_iterations = meta["num_iterations"]
        return agent

    @classmethod
    def _from_saved(cls, hparams: dict, state: dict[str, np.ndarray], env) -> BaseAgent:
        return cls(env, **hparams)



AGENT_FORMAT, AGENT_FORMAT_VERSION = "prefgym.agent", 1


def _read_agent_zip(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, state)`` of a :meth:`BaseAgent.save` file, each failure an :class:`AgentLoadError`."""
    from prefgym.sb3_files import check_format

    where = str(path)
    if not path.is_file():
        raise AgentLoadError(f"no saved agent at {where}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            missing = [m for m in ("agent.json", "state.npz") if m not in names]
            if missing:
                raise AgentLoadError(f"{where} is not a prefgym agent file: no {missing[0]} "
                                     f"(holds {names[:6]})")
            raw_meta, raw_state = zf.read("agent.json"), zf.read("state.npz")
    except AgentLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged zip raises many types (BadZipFile, zlib, struct...)
        raise AgentLoadError(f"{where} is not a readable agent file (empty, truncated or corrupted: "
                             f"{type(exc).__name__}: {exc})") from None
    try:
        meta = json.loads(raw_meta)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentLoadError(f"{where}: agent.json is not valid JSON ({exc})") from None
    check_format(meta, AGENT_FORMAT, AGENT_FORMAT_VERSION, where)
    fields = {"class": str, "hparams": dict, "num_iterations": int, "rng": dict}
    for key, kind in fields.items():
        val = meta.get(key)
        if not isinstance(val, kind) or isinstance(val, bool):
            raise AgentLoadError(f"{where}: agent.json field {key!r} must be a {kind.__name__}; "
                                 f"got {val!r:.80}")
    if meta["num_iterations"] < 0:
        raise AgentLoadError(f"{where}: num_iterations must be >= 0; got {meta['num_iterations']}")
    seed = meta.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise AgentLoadError(f"{where}: agent.json field 'seed' must be an integer or null; got {seed!r:.80}")
    try:
        with np.load(io.BytesIO(raw_state), allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a damaged .npz
        raise AgentLoadError(f"{where}: state.npz is corrupted or holds pickled objects "
                             f"({type(exc).__name__}: {exc})") from None
    return meta, state


def _check_hparam_types(klass: type, hparams: dict[str, Any], where: str) -> None:
    """Saved numbers and flags must have the type of the constructor's default (JSON types)."""
    import inspect

    params = inspect.signature(klass.__init__).parameters
    for key, val in hparams.items():
        if key not in params:
            continue
        default = params[key].default
        if isinstance(default, bool):
            ok = isinstance(val, bool)
            kind = "a boolean"
        elif isinstance(default, (int, float)):
            ok = val is None or (isinstance(val, (int, float)) and not isinstance(val, bool))
            kind = "a number"
        else:
            continue
        if not ok:
            raise AgentLoadError(f"{where}: hyper-parameter {key!r} must be {kind}; got {val!r:.80}")
