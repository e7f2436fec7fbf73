"""The Agent API shared by every prefgym agent: Stable-Baselines3's.

>>> from prefgym.games import rps
>>> from prefgym.agents import OMWU
>>> agent = OMWU(rps(), learning_rate=0.1, seed=0).learn(100)
>>> action, _ = agent.predict(None, deterministic=True)

``learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps,
progress_bar)``, ``predict``, ``save`` / ``load``, ``set_random_seed``,
``get_parameters`` / ``set_parameters``, ``logger`` / ``set_logger``, ``get_env``,
``num_timesteps``: the names and meanings of SB3's ``BaseAlgorithm``, so SB3's
callbacks and loggers work on every agent. The agents here are iterative solvers:
**one timestep is one update** of the policy (for a tabular agent one step of its
rule on the exact payoffs; for an LLM trainer one self-play iteration).

Subclasses implement :meth:`_setup_learn`, :meth:`_iterate`, :meth:`_finish_learn`
and :meth:`_step_info` (the metrics of an update, logged and given to callbacks),
and list their state for :meth:`save`.
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
from prefgym.errors import AgentLoadError, InvalidArgumentError, InvalidTypeError
from prefgym.fileio import atomic_write, read_zip_json
from prefgym.serialization import json_default

__all__ = ["BaseAgent", "as_vec_env", "check_seed", "check_timesteps", "is_env"]

#: ``dones`` of an update in the callbacks' locals: one self-play round (episode) per update
_DONES = np.ones(1, dtype=bool)


def check_timesteps(value, name: str = "total_timesteps", minimum: int = 0) -> int:
    """``value`` as an int, or a clear error unless it is an integer ``>= minimum``.

    Integral floats (``1e5``) are accepted, as SB3 does; ``None``, strings, booleans and
    fractions are not.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidTypeError(f"{name} must be an integer >= {minimum}; got {value!r} "
                               f"({type(value).__name__})")
    if not np.isfinite(value) or int(value) != value or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def is_env(obj) -> bool:
    """Whether ``obj`` is an environment (Gymnasium env, wrapper or VecEnv) rather than a game."""
    return callable(getattr(obj, "reset", None)) and callable(getattr(obj, "step", None))


def as_vec_env(env):
    """``env`` as an SB3 ``DummyVecEnv`` (unchanged if it is a VecEnv, or if SB3 is not installed)."""
    if hasattr(env, "num_envs") and hasattr(env, "step_async"):
        return env
    try:
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError:
        return env
    return DummyVecEnv([lambda: env])


def check_seed(seed) -> int:
    """``seed`` as a non-negative int, or a clear error."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


class BaseAgent(ABC):
    """Common training loop, callbacks, progress bar and persistence.

    Attributes
    ----------
    num_iterations
        Policy updates done so far (across calls to :meth:`learn`; saved with the agent).
    num_timesteps
        SB3's timestep counter: updates since the last :meth:`learn` call with
        ``reset_num_timesteps=True`` (equal to ``num_iterations`` for an agent trained
        in one call, or with ``reset_num_timesteps=False``).
    """

    #: short name used by the CLI and the agent registry
    name: ClassVar[str] = ""

    def __init__(self, seed: int | None = None, verbose: int = 0):
        self.seed = seed
        self.verbose = verbose
        self.num_iterations = 0
        self.num_timesteps = 0
        self._total_timesteps = 0
        self._logger = None
        self._custom_logger = False
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _positive(name: str, value: float) -> float:
        """``value`` as a float, or a ``ValueError`` naming ``name`` unless finite and > 0."""
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number; got {value}")
        return float(value)

    # ------------------------------------------------------------------ API
    #: default ``log_interval`` of :meth:`learn` (updates between two logger dumps)
    default_log_interval: ClassVar[int] = 100
    #: TensorBoard folder of the default logger (SB3's ``tensorboard_log``); None: no TensorBoard
    tensorboard_log: str | None = None

    def learn(
        self,
        total_timesteps: int,
        callback=None,
        log_interval: int | None = None,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> BaseAgent:
        """Run ``total_timesteps`` more updates (SB3's ``learn``; one timestep is one update).

        Parameters
        ----------
        total_timesteps
            Number of policy updates to run; training continues from the current state.
        callback
            A callback (prefgym's or SB3's ``BaseCallback``), a list of them, or a function
            ``f(locals, globals)``; returning False stops training.
        log_interval
            Record the agent's metrics in :attr:`logger` and dump them every
            ``log_interval`` updates (default :attr:`default_log_interval`).
        tb_log_name
            Run name of the default logger's TensorBoard folder (with :attr:`tensorboard_log`).
        reset_num_timesteps
            Restart :attr:`num_timesteps` at 0 (as SB3). :attr:`num_iterations`, the
            algorithm's update count, is never reset.
        progress_bar
            Show a tqdm progress bar.
        """
        total = check_timesteps(total_timesteps)
        log_interval = self.default_log_interval if log_interval is None else check_timesteps(
            log_interval, "log_interval", minimum=1)
        self._setup_logger_and_counter(total, reset_num_timesteps, tb_log_name)
        cb = convert_callback(callback)
        if cb is not None:
            cb.init_callback(self)
        self._setup_learn(total)
        step_locals = {"self": self, "total_timesteps": total, "dones": _DONES, "infos": [{}],
                       "callback": cb, "log_interval": log_interval}
        if cb is not None:
            cb.on_training_start(step_locals, globals())
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=type(self).__name__, unit="it", mininterval=0.25)
        done = 0
        try:
            for _ in range(total):
                if cb is not None:
                    cb.on_rollout_start()
                self._iterate(done)
                done += 1
                self.num_iterations += 1
                self.num_timesteps += 1
                if bar is not None:
                    bar.update(1)
                if self.num_timesteps % log_interval == 0:
                    self._dump_logs(done - 1)
                if cb is not None:
                    cb.update_locals({"infos": [self._step_info(done - 1)], "dones": _DONES})
                    cb.on_rollout_end()
                    if not cb.on_step():
                        break
        finally:
            if bar is not None:
                bar.close()
            self._finish_learn(done)
        if cb is not None:
            cb.on_training_end()
        return self

    # ------------------------------------------------------- logging
    @property
    def logger(self):
        """The logger the agent records its metrics in (SB3's ``Logger`` API).

        By default a :class:`prefgym.logger.Logger` with no output (``stdout`` when
        ``verbose >= 1``, TensorBoard with :attr:`tensorboard_log`), built by
        :meth:`learn`; replace it with :meth:`set_logger`.
        """
        if getattr(self, "_logger", None) is None:
            from prefgym.logger import configure_logger

            self._logger = configure_logger(self.verbose)
        return self._logger

    def set_logger(self, logger) -> None:
        """Log through ``logger`` (SB3's ``configure(folder, formats)`` or :func:`prefgym.logger.configure`).

        The agent keeps it across :meth:`learn` calls instead of building its default one.
        """
        for method in ("record", "dump"):
            if not callable(getattr(logger, method, None)):
                raise InvalidTypeError(f"logger must have SB3's Logger API (record, dump); got "
                                       f"{type(logger).__name__}")
        self._logger = logger
        self._custom_logger = True

    def _setup_logger_and_counter(self, total: int, reset_num_timesteps: bool,
                                  tb_log_name: str | None) -> None:
        if reset_num_timesteps:
            self.num_timesteps = 0
        self._total_timesteps = total + self.num_timesteps
        if not getattr(self, "_custom_logger", False) and (
                reset_num_timesteps or getattr(self, "_logger", None) is None):
            from prefgym.logger import configure_logger

            if getattr(self, "_logger", None) is not None:
                self._logger.close()  # the previous call's default logger (its files and writers)
            self._logger = configure_logger(self.verbose, self.tensorboard_log,
                                            tb_log_name or type(self).__name__, reset_num_timesteps)

    def _dump_logs(self, index: int) -> None:
        """Record ``iteration`` and the metrics of update ``index`` (within this call), then dump."""
        logger = self.logger
        logger.record("iteration", self.num_iterations)
        for key, value in self._step_info(index).items():
            logger.record(key, value)
        logger.dump(step=self.num_timesteps)

    def _step_info(self, index: int) -> dict[str, Any]:
        """The metrics of update ``index`` (within this :meth:`learn` call): ``infos[0]`` of callbacks."""
        return {}

    # -------------------------------------------------------- SB3's model API
    def get_env(self):
        """The training environment as an SB3 VecEnv (None if the agent has none)."""
        return None

    def _cached_vec_env(self, make_default_env):
        """The env the agent was built from (``self._env``), else ``make_default_env()``, wrapped
        once by :func:`as_vec_env` and kept for later calls."""
        if getattr(self, "_vec_env", None) is None:
            env = self._env if self._env is not None else make_default_env()
            self._vec_env = as_vec_env(env)
        return self._vec_env

    def get_vec_normalize_env(self):
        """None: prefgym agents do not normalise observations (SB3 callbacks ask)."""
        return None

    def set_random_seed(self, seed: int | None = None) -> None:
        """Re-seed every random draw the agent makes from now on (None: leave the seed as is)."""
        if seed is None:
            return
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)

    def get_parameters(self) -> dict[str, Any]:
        """Copies of the arrays that define the agent's state (SB3's ``get_parameters``).

        Everything :meth:`save` stores except the game and the metric histories (which
        stay the agent's own); :meth:`set_parameters` takes it back.
        """
        return {k: np.array(v, copy=True) for k, v in self._get_state().items() if self._is_parameter(k)}

    #: saved arrays that record the past (metrics histories) rather than drive the updates
    _history_state: ClassVar[tuple[str, ...]] = ()

    def _is_parameter(self, key: str) -> bool:
        return not key.startswith("game_") and key not in self._history_state

    def set_parameters(self, load_path_or_dict, exact_match: bool = True, device: str = "auto") -> None:
        """Load parameters from a dict of :meth:`get_parameters` or from a file written by :meth:`save`.

        Parameters
        ----------
        load_path_or_dict
            The dict, or the path of a saved agent of this class.
        exact_match
            Require every parameter (otherwise a subset updates the others' values).
        device
            Ignored (NumPy agents); kept for SB3's signature.
        """
        if isinstance(load_path_or_dict, str | Path):
            params = type(self).load(load_path_or_dict).get_parameters()
        elif isinstance(load_path_or_dict, dict):
            params = load_path_or_dict
        else:
            raise InvalidTypeError("set_parameters takes a dict from get_parameters() or a saved "
                                   f"agent's path; got {type(load_path_or_dict).__name__}")
        state = self._get_state()
        current = {k: v for k, v in state.items() if self._is_parameter(k)}
        unknown = sorted(set(params) - set(current))
        missing = sorted(set(current) - set(params))
        if unknown:
            raise InvalidArgumentError(f"unknown parameters {unknown}; {type(self).__name__} has "
                                       f"{sorted(current)}")
        if exact_match and missing:
            raise InvalidArgumentError(f"parameters {missing} are missing (exact_match=True)")
        new = dict(state)
        for k, v in params.items():
            arr = np.asarray(v)
            if arr.shape != np.shape(current[k]):
                raise InvalidArgumentError(f"parameter {k!r} has shape {arr.shape}; the agent's has "
                                           f"{np.shape(current[k])}")
            new[k] = arr
        self._set_state(new)

    @abstractmethod
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """Return ``(action, state)`` as in SB3."""

    # ---------------------------------------------------------- subclassing
    # ------------------------------------------ per-update curves of last / average iterate
    def _start_curve_buffers(self, shape: tuple[int, ...]) -> None:
        """Buffers for one :meth:`learn` call's per-update (last, average) values."""
        self._buf_last, self._buf_avg = np.empty(shape), np.empty(shape)
        self._buf_n = 0

    def _curves_so_far(self, last: np.ndarray, avg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored curves ``last`` and ``avg`` with those of a :meth:`learn` call in progress."""
        n = getattr(self, "_buf_n", 0)
        if not n:
            return last, avg
        return np.concatenate([last, self._buf_last[:n]]), np.concatenate([avg, self._buf_avg[:n]])

    def _flush_curve_buffers(self, last: np.ndarray, avg: np.ndarray,
                             done: int) -> tuple[np.ndarray, np.ndarray]:
        """``last`` and ``avg`` extended by the call's ``done`` updates; the buffers are dropped."""
        out = np.concatenate([last, self._buf_last[:done]]), np.concatenate([avg, self._buf_avg[:done]])
        del self._buf_last, self._buf_avg
        self._buf_n = 0
        return out

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
    def _hparam_defaults(cls) -> dict[str, Any]:
        """Constructor keyword -> default (what a saved hyper-parameter's type is checked against)."""
        import inspect

        return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}

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
    meta, members = read_zip_json(path, "agent.json", ("state.npz",), where, "prefgym agent file")
    raw_state = members["state.npz"]
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
    defaults = klass._hparam_defaults()
    for key, val in hparams.items():
        if key not in defaults:
            continue
        default = defaults[key]
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
