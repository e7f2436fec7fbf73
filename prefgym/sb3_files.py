"""Stable-Baselines3 models on disk without pickle: safetensors for the weights, JSON for the rest.

SB3's own ``model.save`` writes a zip whose ``data`` JSON holds cloudpickled
objects (``":serialized:"`` fields: the policy class, the spaces, schedules),
and ``SAC.load`` un-pickles them, which runs whatever code the file carries.
prefgym's own SB3 files (the SAC experts and checkpoints of ``prefgym data``,
the SAC inside an AIHF agent) are written by :func:`save_sb3_model` instead::

    prefgym_sb3.json     format + version, algorithm, policy alias, constructor
                         arguments, spaces, counters, optimiser param groups
    tensors.safetensors  policy.*, optimizers (<name>.state.<i>.<key>), variables

and read back by :func:`load_sb3_model`, which rebuilds the model from its
constructor arguments (as SB3 does, with ``_init_setup_model=False``) and loads
the tensors. Restored exactly: the policy (actor, critics, target critics), the
optimisers' states, the entropy coefficient, ``num_timesteps`` and the update
counters, so ``learn(..., reset_num_timesteps=False)`` continues as SB3's own
loader does. Not restored (SB3's loader does not restore them either, or they
are code): the replay buffer, the environment's current observation (the next
``learn`` resets the env), the RNG state, and constructor arguments that are
objects rather than data (callable schedules, action noise; listed under
``not_restored`` in the JSON).

A third-party SB3 zip is read with SB3's loader only with ``trust_remote_code=True``;
otherwise :class:`~prefgym.errors.UnsafeFileError` says why.

>>> save_sb3_model(model, "expert.zip")
>>> model = load_sb3_model("expert.zip", env=env)
"""

from __future__ import annotations

import inspect
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.errors import AgentLoadError, UnsafeFileError
from prefgym.fileio import atomic_write, read_zip_json

__all__ = ["SB3_FORMAT", "SB3_FORMAT_VERSION", "is_prefgym_sb3_file", "load_sb3_model", "load_sb3_state",
           "optimizer_from_flat", "optimizer_to_flat", "safe_checkpoint_callback", "save_sb3_model",
           "sb3_state", "sb3_zip_is_unsafe"]

SB3_FORMAT, SB3_FORMAT_VERSION = "prefgym.sb3", 1
META_MEMBER, TENSORS_MEMBER = "prefgym_sb3.json", "tensors.safetensors"
# buffer classes: SB3's default for the spaces, or the caller's (custom_objects); device: the loader's
_SKIP_ARGS = {"self", "policy", "env", "device", "_init_setup_model", "replay_buffer_class",
              "rollout_buffer_class"}
_COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_current_progress_remaining")


def _algorithms() -> dict[str, type]:
    import stable_baselines3 as sb3

    return {name: getattr(sb3, name) for name in ("SAC", "TD3", "DDPG", "PPO", "A2C", "DQN")}


# ------------------------------------------------------------------ JSON encodings
def _space_to_json(space) -> dict[str, Any]:
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return {"type": "Box", "low": space.low.tolist(), "high": space.high.tolist(),
                "shape": list(space.shape), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: _space_to_json(v) for k, v in space.spaces.items()}}
    raise AgentLoadError(f"cannot save a {type(space).__name__} space without pickle; "
                         "supported: Box, Discrete, MultiDiscrete, MultiBinary, Dict")


def _space_from_json(d: dict[str, Any]):
    from gymnasium import spaces

    kind = d["type"]
    if kind == "Box":
        dtype = np.dtype(d["dtype"])
        return spaces.Box(np.asarray(d["low"], dtype), np.asarray(d["high"], dtype), tuple(d["shape"]), dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d["start"]))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(d["nvec"]))
    if kind == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if kind == "Dict":
        return spaces.Dict({k: _space_from_json(v) for k, v in d["spaces"].items()})
    raise ValueError(f"unknown space type {kind!r}")


def _encode(value: Any) -> tuple[bool, Any]:
    """``(ok, json_value)``: classes of ``torch.nn`` / ``torch.optim`` by name, else plain JSON data."""
    import torch

    if isinstance(value, type):
        for mod in (torch.nn, torch.optim):
            if getattr(mod, value.__name__, None) is value:
                return True, {"__class__": f"{mod.__name__}.{value.__name__}"}
        return False, None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            ok, enc = _encode(v)
            if not ok or not isinstance(k, str):
                return False, None
            out[k] = enc
        return True, out
    if isinstance(value, (list, tuple)):
        items = [_encode(v) for v in value]
        if not all(ok for ok, _ in items):
            return False, None
        enc = [v for _, v in items]
        return True, ({"__tuple__": enc} if isinstance(value, tuple) else enc)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    return False, None


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode`; a class is looked up by name in ``torch.nn`` / ``torch.optim`` only."""
    import torch

    if isinstance(value, dict):
        if set(value) == {"__class__"}:
            mod_name, _, cls_name = str(value["__class__"]).rpartition(".")
            mod = {"torch.nn": torch.nn, "torch.optim": torch.optim}.get(mod_name)
            cls = getattr(mod, cls_name, None) if mod is not None else None
            if not isinstance(cls, type):
                raise ValueError(f"class {value['__class__']!r} is not a torch.nn / torch.optim class")
            return cls
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


# ------------------------------------------------------------------ optimisers
def optimizer_to_flat(prefix: str, state_dict: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimiser ``state_dict`` as ``(tensors, json)``: tensors under ``prefix.state.<i>.<key>``."""
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state_dict["state"].items():
        for key, val in entry.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{prefix}.state.{idx}.{key}"] = val
            else:
                ok, enc = _encode(val)
                if not ok:
                    raise AgentLoadError(f"optimizer state {prefix}.{idx}.{key} is not data "
                                         f"({type(val).__name__})")
                scalars.setdefault(str(idx), {})[key] = enc
    ok, groups = _encode(state_dict["param_groups"])
    if not ok:
        raise AgentLoadError(f"optimizer {prefix}'s param groups are not plain data")
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(prefix: str, tensors: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_flat`: the ``state_dict`` to pass to ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    head = prefix + ".state."
    for name, val in tensors.items():
        if name.startswith(head):
            idx, _, key = name[len(head):].partition(".")
            state.setdefault(int(idx), {})[key] = val
    for idx, entries in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update({k: _decode(v) for k, v in entries.items()})
    return {"state": state, "param_groups": _decode(meta["param_groups"])}


# ------------------------------------------------------------------ model state
def _resolve(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def sb3_state(model) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, json)`` of an SB3 model's trainable state (policy, optimisers, variables, counters)."""
    import torch

    state_names, var_names = model._get_torch_save_params()
    tensors: dict[str, Any] = {}
    optimizers: dict[str, Any] = {}
    for name in state_names:
        obj = _resolve(model, name)
        if name == "policy":
            tensors.update({f"policy.{k}": v for k, v in obj.state_dict().items()})
        else:
            t, meta = optimizer_to_flat(f"optim:{name}", obj.state_dict())
            tensors.update(t)
            optimizers[name] = meta
    variables = []
    for name in var_names:
        val = _resolve(model, name)
        if isinstance(val, torch.Tensor):
            tensors[f"var:{name}"] = val
            variables.append(name)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    counters = {k: getattr(model, k) for k in _COUNTERS if hasattr(model, k)}
    return tensors, {"optimizers": optimizers, "variables": variables, "counters": counters}


def load_sb3_state(model, tensors: dict[str, Any], meta: dict[str, Any], where: str = "file") -> None:
    """Load :func:`sb3_state`'s output into ``model`` (built with the same arguments)."""
    import torch

    policy_sd = {k[len("policy."):]: v for k, v in tensors.items() if k.startswith("policy.")}
    try:
        model.policy.load_state_dict(policy_sd, strict=True)
        for name, opt_meta in meta.get("optimizers", {}).items():
            _resolve(model, name).load_state_dict(optimizer_from_flat(f"optim:{name}", tensors, opt_meta))
        for name in meta.get("variables", []):
            target = _resolve(model, name)
            with torch.no_grad():
                target.copy_(tensors[f"var:{name}"])
    except (RuntimeError, KeyError, ValueError, AttributeError, IndexError, TypeError) as exc:
        raise AgentLoadError(f"{where}: the saved weights do not fit the model "
                             f"({type(exc).__name__}: {_short(exc)})") from None
    for key, val in meta.get("counters", {}).items():
        setattr(model, key, val)
    if getattr(model, "use_sde", False):
        model.policy.reset_noise()


def _short(exc: BaseException, n: int = 300) -> str:
    return " ".join(str(exc).split())[:n]


def _constant_of(value: Any) -> Any:
    """The value of an SB3 constant schedule (``FloatSchedule(ConstantSchedule(v))``), else ``value``."""
    inner = value
    for _ in range(4):
        if hasattr(inner, "value_schedule"):
            inner = inner.value_schedule
        elif hasattr(inner, "val") and isinstance(inner.val, (int, float)):
            return inner.val
        else:
            break
    return value


def _constructor_args(model) -> tuple[dict[str, Any], list[str]]:
    args, skipped = {}, []
    for name, param in inspect.signature(type(model).__init__).parameters.items():
        if name in _SKIP_ARGS or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        if hasattr(model, name):
            value = getattr(model, name)
        elif hasattr(model, "_" + name):
            value = getattr(model, "_" + name)
        else:
            continue
        if name == "train_freq" and hasattr(value, "frequency"):
            value = (int(value.frequency), value.unit.value)
        value = _constant_of(value)
        if callable(value) and not isinstance(value, type):  # a schedule: code, not data
            skipped.append(name)
            continue
        ok, enc = _encode(value)
        if ok:
            args[name] = enc
        else:
            skipped.append(name)
    return args, skipped


# ------------------------------------------------------------------ files
def save_sb3_model(model, path: str | os.PathLike, env_id: str | None = None) -> Path:
    """Write ``model`` to ``path`` atomically: a zip of JSON and safetensors (``.zip`` appended if absent)."""
    from safetensors.torch import save as st_save

    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_suffix(path.suffix + ".zip")
    algo = type(model).__name__
    aliases = {v: k for k, v in getattr(type(model), "policy_aliases", {}).items()}
    if algo not in _algorithms() or model.policy_class not in aliases:
        raise AgentLoadError(f"save_sb3_model supports {sorted(_algorithms())} with a policy alias "
                             f"({sorted(aliases.values())}); got {algo} with {model.policy_class.__name__}")
    tensors, state_meta = sb3_state(model)
    kwargs, skipped = _constructor_args(model)
    if env_id is None:
        env = model.get_env()
        spec = getattr(env.envs[0], "spec", None) if env is not None and hasattr(env, "envs") else None
        env_id = getattr(spec, "id", None)
    meta = {"format": SB3_FORMAT, "format_version": SB3_FORMAT_VERSION, "algorithm": algo,
            "policy": aliases[model.policy_class], "kwargs": kwargs, "not_restored": skipped,
            "observation_space": _space_to_json(model.observation_space),
            "action_space": _space_to_json(model.action_space), "env_id": env_id, **state_meta}
    payload = st_save(tensors)
    with atomic_write(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(META_MEMBER, json.dumps(meta, indent=1, allow_nan=True))
        zf.writestr(TENSORS_MEMBER, payload)
    return path


def safe_checkpoint_callback(save_freq: int, save_path: str | os.PathLike, name_prefix: str = "model",
                             verbose: int = 0):
    """SB3's ``CheckpointCallback``, writing :func:`save_sb3_model` files (no pickle), not ``model.save``.

    Same file names (``{name_prefix}_{steps}_steps.zip``), read back by :func:`load_sb3_model`.
    """
    from stable_baselines3.common.callbacks import CheckpointCallback

    class SafeCheckpointCallback(CheckpointCallback):
        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                path = save_sb3_model(self.model, self._checkpoint_path(extension="zip"))
                if self.verbose >= 2:
                    print(f"Saving model checkpoint to {path}")
            return True

    return SafeCheckpointCallback(save_freq, str(save_path), name_prefix=name_prefix, verbose=verbose)


def is_prefgym_sb3_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip written by :func:`save_sb3_model`."""
    try:
        with zipfile.ZipFile(path) as zf:
            return META_MEMBER in zf.namelist()
    except Exception:  # noqa: BLE001 - unreadable: not ours
        return False


def sb3_zip_is_unsafe(source: str | os.PathLike | bytes) -> bool:
    """Whether an SB3 zip's ``data`` JSON holds cloudpickled (``":serialized:"``) fields, or is unreadable."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            data = zf.read("data").decode("utf-8", errors="replace") if "data" in zf.namelist() else ""
    except Exception:  # noqa: BLE001 - unreadable: treat as unsafe
        return True
    return ":serialized:" in data


def read_sb3_members(source: str | os.PathLike | bytes, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, tensors)`` of a :func:`save_sb3_model` file (a path or its bytes), checked."""
    from safetensors.torch import load as st_load

    meta, members = read_zip_json(source, META_MEMBER, (TENSORS_MEMBER,), where, "prefgym SB3 file")
    payload = members[TENSORS_MEMBER]
    check_format(meta, SB3_FORMAT, SB3_FORMAT_VERSION, where)
    for key, kind in (("algorithm", str), ("policy", str), ("kwargs", dict), ("optimizers", dict),
                      ("variables", list), ("counters", dict), ("observation_space", dict),
                      ("action_space", dict)):
        if not isinstance(meta.get(key), kind):
            raise AgentLoadError(f"{where}: field {key!r} must be a {kind.__name__}; "
                                 f"got {meta.get(key)!r:.80}")
    try:
        tensors = st_load(payload)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise AgentLoadError(f"{where}: {TENSORS_MEMBER} is corrupted ({type(exc).__name__}: "
                             f"{_short(exc)})") from None
    return meta, tensors


def check_format(meta: Any, name: str, version: int, where: str) -> int:
    """The format version of ``meta`` (0: written before versions); ``AgentLoadError`` if foreign or newer."""
    if not isinstance(meta, dict):
        raise AgentLoadError(f"{where}: metadata must be a JSON object; got {type(meta).__name__}")
    got_name = meta.get("format", name)
    if got_name != name:
        raise AgentLoadError(f"{where} holds a {got_name!r} file, not a {name!r} one")
    got = meta.get("format_version", 0)
    if isinstance(got, bool) or not isinstance(got, int) or got < 0:
        raise AgentLoadError(f"{where}: format_version must be a non-negative integer; got {got!r}")
    if got > version:
        raise AgentLoadError(f"{where} was written in {name} format version {got}, newer than this prefgym "
                             f"reads (<= {version}); upgrade prefgym")
    return got


def load_sb3_model(path: str | os.PathLike, env=None, device: str = "auto", trust_remote_code: bool = False,
                   custom_objects: dict[str, Any] | None = None, algorithm: str | None = None):
    """Load an SB3 model: a :func:`save_sb3_model` file safely, or an SB3 zip with ``trust_remote_code``.

    Parameters
    ----------
    env
        Environment of the model (needed to continue training); None: a model for ``predict``.
    custom_objects
        Constructor arguments to set (e.g. ``replay_buffer_class``); for an SB3 zip, passed to
        its loader.
    algorithm
        Expected algorithm name (``"SAC"``); ``AgentLoadError`` if the file holds another.
    trust_remote_code
        Allow SB3's loader, which un-pickles the zip's ``":serialized:"`` fields (this runs code
        from the file). Only for files from a source you trust.

    Raises
    ------
    AgentLoadError
        Missing, empty, truncated, corrupted or foreign file; newer format; weights that do not fit.
    UnsafeFileError
        An SB3 zip with pickled fields, without ``trust_remote_code=True``.
    """
    where = str(path)
    path = Path(path)
    if not path.is_file():
        raise AgentLoadError(f"no model file at {where}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except Exception as exc:  # noqa: BLE001 - see read_sb3_members
        raise AgentLoadError(f"{where} is not a readable zip file (empty, truncated or corrupted: "
                             f"{type(exc).__name__}: {_short(exc)})") from None
    if META_MEMBER not in names:
        return _load_foreign_sb3(path, names, env, device, trust_remote_code, custom_objects, algorithm)
    meta, tensors = read_sb3_members(str(path), where)
    return build_sb3_model(meta, tensors, where, env=env, device=device, custom_objects=custom_objects,
                           algorithm=algorithm)


def build_sb3_model(meta: dict[str, Any], tensors: dict[str, Any], where: str, env=None, device="auto",
                    custom_objects: dict[str, Any] | None = None, algorithm: str | None = None):
    """The model described by :func:`read_sb3_members`'s output."""
    algos = _algorithms()
    name = meta["algorithm"]
    if name not in algos:
        raise AgentLoadError(f"{where} holds an unknown algorithm {name!r}; known: {sorted(algos)}")
    if algorithm is not None and name != algorithm:
        raise AgentLoadError(f"{where} holds a {name} model, not a {algorithm}")
    cls = algos[name]
    if meta["policy"] not in cls.policy_aliases:
        raise AgentLoadError(f"{where}: unknown {name} policy {meta['policy']!r}; "
                             f"known: {sorted(cls.policy_aliases)}")
    try:
        kwargs = _decode(meta["kwargs"])
        obs_space = _space_from_json(meta["observation_space"])
        act_space = _space_from_json(meta["action_space"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentLoadError(f"{where}: bad constructor arguments or spaces ({_short(exc)})") from None
    kwargs.update(custom_objects or {})
    try:
        model = cls(meta["policy"], env=env, device=device, _init_setup_model=False, **kwargs)
        if env is None:
            model.observation_space, model.action_space, model.n_envs = obs_space, act_space, 1
        else:
            from stable_baselines3.common.utils import check_for_correct_spaces

            check_for_correct_spaces(model.env, obs_space, act_space)
        model._setup_model()
    except (TypeError, ValueError, AssertionError) as exc:
        raise AgentLoadError(f"{where}: cannot rebuild the {name} model from its saved arguments "
                             f"({type(exc).__name__}: {_short(exc)})") from None
    load_sb3_state(model, tensors, meta, where)
    return model


def _load_foreign_sb3(path: Path, names: list[str], env, device, trust_remote_code: bool,
                      custom_objects, algorithm):
    where = str(path)
    if "data" not in names:
        raise AgentLoadError(f"{where} is neither a prefgym SB3 file nor an SB3 zip (members {names[:6]})")
    if sb3_zip_is_unsafe(path) and not trust_remote_code:
        raise UnsafeFileError(
            f"{where} is an SB3 zip whose 'data' holds cloudpickled (':serialized:') objects; loading it "
            "would run code stored in the file. Load it only if you trust its source: pass "
            "trust_remote_code=True (CLI: --trust-remote-code), or re-save it with "
            "prefgym.sb3_files.save_sb3_model")
    cls = _algorithms().get(algorithm or "SAC")
    if cls is None:
        raise AgentLoadError(f"unknown algorithm {algorithm!r}")
    try:
        return cls.load(path, env=env, device=device, custom_objects=custom_objects)
    except Exception as exc:  # noqa: BLE001 - a trusted but broken file: one clear error
        raise AgentLoadError(f"SB3 could not load {where}: {type(exc).__name__}: {_short(exc)}") from None
