"""``prefgym train --algo ...`` and ``prefgym evaluate`` for Stable-Baselines3 runs.

Any registered prefgym id with array spaces trains through SB3; on the two-player games
(all of them) the learner plays against a pool of its own snapshots
(:mod:`prefgym.selfplay`)::

    prefgym train --algo ppo --env prefgym/RPS-v0
    prefgym train --algo ppo --env prefgym/GridworldRandom-v0 --env-kwargs '{"seed": 3}'
    prefgym train --algo sac --env prefgym/HopperPreference-v0 --tensorboard-log tb/
    prefgym train --algo ppo --env prefgym/Gridworld-v0 --hyperparams n_timesteps=20000 \\
        ent_coef=0.02 selfplay.pool_size=3
    prefgym train --algo aihf --env prefgym/HopperPreference-v0 \\
        --hyperparams demonstrations=prefgym/Hopper-v5/demos-v0 preferences=prefs.npz
    prefgym evaluate runs/ppo-GridworldRandom-v0-20260101-120000 --episodes 50

Hyper-parameters come from the YAML file shipped for the algorithm
(``prefgym/hyperparams/{algo}.yml``, one entry per env id, rl-baselines3-zoo style), or
from ``--conf-file`` (same format), with ``--hyperparams key=value`` on top (values
parsed as JSON, then YAML, else kept as strings; ``a.b=v`` sets a nested key). Keys
are checked against the algorithm's constructor before anything is written.

The run folder (``--out``, default ``runs/{algo}-{env}-{time}``; an existing non-empty
folder is refused) holds ``config.json`` (the settings and final numbers),
``metrics.csv`` (SB3's logger, one row per log interval), ``policy.safetensors`` (the
learner's weights: loading them runs no code), ``checkpoints/`` (SB3 models in
prefgym's pickle-free format, every ``checkpoint_every`` steps; ``prefgym.sb3_files.load_sb3_model``
reads them) and, on the gridworld
ids, ``exploitability.csv`` (exact exploitability of the read-out tabular policy over
training).

``prefgym evaluate RUN`` rebuilds the learner from ``config.json`` and
``policy.safetensors`` and plays ``--episodes`` episodes of the id's single-agent view
against its default opponent (uniform random actions; AIHF: the base task), reporting
the mean return +- std (and the mean true task return on the control ids), and the exact
exploitability on the gridworld and matrix ids. Discrete-action policies sample their
actions (equilibria are mixed); continuous ones act deterministically.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import time
import warnings
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.errors import InvalidArgumentError, PrefgymError
from prefgym.fileio import atomic_write_text, prepare_output_dir
from prefgym.serialization import json_default

__all__ = ["ALGOS", "PREFGYM_KEYS", "load_hyperparams", "train_sb3", "evaluate_sb3", "is_sb3_run"]

#: ``--algo`` name -> SB3 class name (``aihf``: prefgym's AIHF on SB3 SAC)
ALGOS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "sac": "SAC", "td3": "TD3", "aihf": "AIHF"}
#: hyper-parameter keys the CLI reads itself (not passed to the algorithm)
PREFGYM_KEYS = ("n_timesteps", "policy", "n_envs", "env_kwargs", "selfplay", "checkpoint_every",
                "exploitability_every", "callback")
SELFPLAY_KEYS = {"snapshot_every": int, "pool_size": int, "sampling": str, "observe_step": bool}
#: constructor arguments the CLI sets itself or that need Python objects
RESERVED = ("self", "policy", "env", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model",
            "replay_buffer_class", "rollout_buffer_class", "action_noise")
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU"}
RUN_KIND = "sb3"


class HyperparamError(InvalidArgumentError):
    """A hyper-parameter that is unknown or has the wrong type."""


# ------------------------------------------------------------------ hyper-parameters
def _algo_class(algo: str):
    if algo not in ALGOS:
        raise InvalidArgumentError(f"unknown --algo {algo!r}; choose from {sorted(ALGOS)}")
    from prefgym.optional import require

    if algo == "aihf":
        require("stable_baselines3", "sb3", "--algo aihf needs stable-baselines3")
        from prefgym.agents.aihf import AIHF

        return AIHF
    sb3 = require("stable_baselines3", "sb3", f"--algo {algo} needs stable-baselines3")
    return getattr(sb3, ALGOS[algo])


def _read_yaml(path: Path | None, algo: str) -> tuple[dict, str]:
    import yaml

    try:
        if path is None:
            text = resources.files("prefgym.hyperparams").joinpath(f"{algo}.yml").read_text()
            source = f"prefgym/hyperparams/{algo}.yml"
        else:
            text, source = Path(path).read_text(), str(path)
    except FileNotFoundError:
        raise InvalidArgumentError(f"no hyper-parameter file {path!r}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HyperparamError(f"{source} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise HyperparamError(f"{source} must map env ids to hyper-parameter dicts; "
                              f"got {type(data).__name__}")
    return data, source


def _parse_value(raw: str) -> Any:
    import yaml

    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def parse_overrides(items) -> dict[str, Any]:
    """``["n_steps=64", "selfplay.pool_size=3"]`` -> ``{"n_steps": 64, "selfplay": {"pool_size": 3}}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = str(item).partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.isidentifier() for p in parts):
            raise HyperparamError(f"--hyperparams expects key=value (key an identifier, a.b for nested); "
                                  f"got {item!r}")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise HyperparamError(f"--hyperparams sets {p!r} both as a value and as a group")
        node[parts[-1]] = _parse_value(raw)
    return out


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _type_name(v: Any) -> str:
    return f"{type(v).__name__} {v!r}"


def _check_type(name: str, value: Any, default: Any, where: str) -> Any:
    """Check ``value`` against the type of the constructor default; return it (numbers coerced)."""
    def bad(want: str):
        return HyperparamError(f"{where}: {name} must be {want}; got {_type_name(value)}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise bad("an integer")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                raise bad("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad("a string or a number")
        return value
    return value


def _check_int_key(hp: dict, key: str, where: str, minimum: int = 1) -> int:
    v = hp[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or v < minimum:
        raise HyperparamError(f"{where}: {key} must be an integer >= {minimum}; got {_type_name(v)}")
    return int(v)


def _policy_kwargs(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise HyperparamError(f"{where}: policy_kwargs must be a mapping; got {_type_name(value)}")
    out = dict(value)
    act = out.get("activation_fn")
    if isinstance(act, str):
        import torch

        key = act.lower().removeprefix("nn.")
        if key not in ACTIVATIONS:
            raise HyperparamError(f"{where}: policy_kwargs.activation_fn must be one of "
                                  f"{sorted(ACTIVATIONS)}; got {act!r}")
        out["activation_fn"] = getattr(torch.nn, ACTIVATIONS[key])
    return out


def _check_algo_keys(hp: dict, cls, algo: str, where: str) -> None:
    """Every key is one of ``cls``'s constructor arguments (checked against its default's type)
    or a prefgym key; ``policy_kwargs`` is resolved."""
    params = {k: v for k, v in inspect.signature(cls.__init__).parameters.items() if k not in RESERVED}
    allowed = sorted(set(params) | set(PREFGYM_KEYS))
    for key in list(hp):
        if key in PREFGYM_KEYS:
            continue
        if key not in params:
            raise HyperparamError(f"{where}: unknown hyper-parameter {key!r} for {algo}; allowed: "
                                  + ", ".join(allowed))
        default = params[key].default
        hp[key] = _check_type(key, hp[key], None if default is inspect.Parameter.empty else default, where)
    if "policy_kwargs" in hp and hp["policy_kwargs"] is not None:
        hp["policy_kwargs"] = _policy_kwargs(hp["policy_kwargs"], where)


def _set_run_keys(hp: dict, algo: str, where: str) -> None:
    """Defaults and checks of the run keys: ``n_timesteps``, ``policy`` / ``n_envs`` (not for
    aihf), the ``*_every`` intervals and ``env_kwargs``."""
    hp.setdefault("n_timesteps", 10_000)
    _check_int_key(hp, "n_timesteps", where)
    if algo != "aihf":
        hp.setdefault("policy", "MlpPolicy")
        hp.setdefault("n_envs", 1)
        _check_int_key(hp, "n_envs", where)
        if not isinstance(hp["policy"], str):
            raise HyperparamError(f"{where}: policy must be an SB3 policy name; "
                                  f"got {_type_name(hp['policy'])}")
    else:
        for key in ("policy", "n_envs", "selfplay", "exploitability_every"):
            if key in hp:
                raise HyperparamError(f"{where}: {key!r} does not apply to aihf "
                                      "(it trains SAC on the base task)")
    for key in ("checkpoint_every", "exploitability_every"):
        if key in hp:
            _check_int_key(hp, key, where)
    hp.setdefault("env_kwargs", {})
    if not isinstance(hp["env_kwargs"], dict):
        raise HyperparamError(f"{where}: env_kwargs must be a mapping; got {_type_name(hp['env_kwargs'])}")


def _checked_selfplay(sp, where: str):
    """The ``selfplay`` entry: False, or a mapping (True is ``{}``) of known keys and types."""
    if sp is True:
        sp = {}
    if sp is False:
        return sp
    if not isinstance(sp, dict):
        raise HyperparamError(f"{where}: selfplay must be false or a mapping of {sorted(SELFPLAY_KEYS)}; "
                              f"got {_type_name(sp)}")
    for key, value in sp.items():
        if key not in SELFPLAY_KEYS:
            raise HyperparamError(f"{where}: unknown selfplay key {key!r}; "
                                  f"allowed: {sorted(SELFPLAY_KEYS)}")
        want = SELFPLAY_KEYS[key]
        if want is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise HyperparamError(f"{where}: selfplay.{key} must be an integer >= 1; "
                                  f"got {_type_name(value)}")
        if want is not int and not isinstance(value, want):
            raise HyperparamError(f"{where}: selfplay.{key} must be {want.__name__}; "
                                  f"got {_type_name(value)}")
    return sp


def load_hyperparams(algo: str, env_id: str, overrides: dict | None = None,
                     conf_file: str | Path | None = None) -> dict[str, Any]:
    """The checked hyper-parameters of ``(algo, env_id)``: the YAML entry with ``overrides`` on top.

    Raises
    ------
    InvalidArgumentError
        Unknown algorithm, an env id without an entry, an unknown key or a value of the
        wrong type (the message names the file, the key and the type wanted).
    """
    cls = _algo_class(algo)
    data, source = _read_yaml(Path(conf_file) if conf_file is not None else None, algo)
    if env_id not in data:
        ids = sorted(k for k in data if str(k).startswith("prefgym/"))
        raise InvalidArgumentError(f"{source} has no entry for {env_id!r} (algo {algo!r} trains on {ids}); "
                                   "add one with --conf-file")
    entry = data[env_id]
    if not isinstance(entry, dict):
        raise HyperparamError(f"{source}: the entry of {env_id!r} must be a mapping; got {_type_name(entry)}")
    hp = _merge(entry, overrides or {})
    where = f"{source} [{env_id}] with --hyperparams" if overrides else f"{source} [{env_id}]"
    _check_algo_keys(hp, cls, algo, where)
    _set_run_keys(hp, algo, where)
    sp = _checked_selfplay(hp.get("selfplay", algo != "aihf" and {}), where)
    if sp is not False and algo != "aihf":
        hp["selfplay"] = {"snapshot_every": 10_000, "pool_size": 5, "sampling": "uniform",
                          "observe_step": False, **sp}
    if "callback" in hp:
        names = hp["callback"] if isinstance(hp["callback"], list) else [hp["callback"]]
        if not all(isinstance(n, str) and "." in n for n in names):
            raise HyperparamError(f"{where}: callback must be 'module.Class' or a list of them; "
                                  f"got {hp['callback']!r}")
    return hp


def _import_callback(name: str):
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgumentError(f"cannot import callback {name!r}: {exc}") from None
    try:
        return obj()
    except Exception as exc:
        raise InvalidArgumentError(f"cannot build callback {name!r}: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------ envs
def _check_env_id(env_id: str) -> None:
    from prefgym.cli_common import env_ids

    ids = env_ids()
    if env_id not in ids:
        raise InvalidArgumentError(f"unknown env {env_id!r}; choose from {ids}")


def _control_task(env_id: str) -> str | None:
    from prefgym.envs.mujoco import CONTROL_TASKS

    return CONTROL_TASKS.get(env_id)


def _make_kwargs(env_id: str, env_kwargs: dict) -> dict:
    from prefgym.cli_common import gridworld_kwargs as _gridworld_kwargs

    return _gridworld_kwargs(env_id, env_kwargs)


def _check_spaces(algo: str, env_id: str, obs_space, act_space) -> None:
    from gymnasium import spaces

    if not isinstance(obs_space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
        raise InvalidArgumentError(f"{env_id} observes {type(obs_space).__name__} (text); SB3 algorithms "
                                   "need Box or Discrete observations: use the LLM agents (--agent NAME-llm)")
    if algo in ("sac", "td3") and not isinstance(act_space, spaces.Box):
        raise InvalidArgumentError(f"--algo {algo} needs a continuous (Box) action space; {env_id} has "
                                   f"{act_space}: use ppo, a2c or dqn")
    if algo == "dqn" and not isinstance(act_space, spaces.Discrete):
        raise InvalidArgumentError(f"--algo dqn needs a Discrete action space; {env_id} has {act_space}")


def _build_env(env_id: str, hp: dict, seed: int | None, n_envs: int | None = None):
    """The training VecEnv: self-play copies, or the single-agent view against its default opponent."""
    import gymnasium
    from stable_baselines3.common.env_util import make_vec_env

    env_kwargs = _make_kwargs(env_id, hp["env_kwargs"])
    n = hp["n_envs"] if n_envs is None else n_envs
    sp = hp.get("selfplay", False)
    try:
        if sp:
            from prefgym.selfplay import make_selfplay_vec_env

            return make_selfplay_vec_env(env_id, n_envs=n, seed=seed, env_kwargs=env_kwargs,
                                         pool_size=sp["pool_size"], sampling=sp["sampling"],
                                         observe_step=sp["observe_step"])
        return make_vec_env(lambda: gymnasium.make(env_id, **env_kwargs), n_envs=n, seed=seed)
    except PrefgymError:
        raise
    except Exception as exc:  # a bad env kwarg is a user error
        raise InvalidArgumentError(f"cannot make {env_id!r} with env_kwargs {hp['env_kwargs']}: "
                                   f"{type(exc).__name__}: {exc}") from None


def _tabular_game(env):
    """The env's game when exploitability is exact: a Markov game, or a matrix game."""
    from prefgym.games import MatrixGame
    from prefgym.games.markov import TabularMarkovGame

    games = env.get_attr("game")
    game = games[0] if games else None
    return game if isinstance(game, TabularMarkovGame | MatrixGame) else None


def _exploitability(model, game, observe_step: bool) -> float | None:
    """Exact exploitability of the learner: Markov games (read-out policy), matrix games (first round)."""
    from prefgym.games.markov import TabularMarkovGame
    from prefgym.selfplay import tabular_policy

    if isinstance(game, TabularMarkovGame):
        return float(game.exploitability(tabular_policy(model, game, observe_step)))
    import torch

    n = game.n_actions
    obs = np.array([[0, n]]) if observe_step else np.array([n])
    policy = model.policy
    if not hasattr(policy, "get_distribution"):
        return None
    with torch.no_grad():
        probs = policy.get_distribution(policy.obs_to_tensor(obs)[0]).distribution.probs.numpy()[0]
    return float(game.exploitability(probs.astype(np.float64) / probs.sum()))


# ------------------------------------------------------------------ train
def _save_policy(policy, path: Path) -> None:
    from safetensors.torch import save as save_bytes

    from prefgym.fileio import atomic_write_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    atomic_write_bytes(path, save_bytes(state))


def _logger(out: Path, tensorboard_log: str | None, run_name: str, verbose: bool):
    from stable_baselines3.common.logger import Logger, make_output_format

    formats = [make_output_format("csv", str(out))]
    if verbose:
        formats.append(make_output_format("stdout", str(out)))
    if tensorboard_log:
        from prefgym.optional import require

        require("tensorboard", "tensorboard", "--tensorboard-log needs tensorboard")
        formats.append(make_output_format("tensorboard", str(Path(tensorboard_log) / run_name)))
    return Logger(folder=str(out), output_formats=formats)


def _algo_kwargs(hp: dict) -> dict:
    return {k: v for k, v in hp.items() if k not in PREFGYM_KEYS}


def train_sb3(
    algo: str,
    env_id: str,
    overrides: dict | None = None,
    conf_file: str | Path | None = None,
    env_kwargs: dict | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    tensorboard_log: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train an SB3 algorithm (self-play on the two-player ids) and write a run folder; return its config.

    Everything is checked (algorithm, env, hyper-parameters, spaces, the env builds) before
    the run folder is created. Raises :class:`~prefgym.errors.PrefgymError` subclasses on
    bad input and when training fails (e.g. a callback raises).
    """
    cls = _algo_class(algo)
    _check_env_id(env_id)
    from prefgym.envs.language_registration import LANGUAGE_ENV_ENTRY_POINTS

    if env_id in LANGUAGE_ENV_ENTRY_POINTS:
        raise InvalidArgumentError(f"{env_id} observes and acts in text (Text spaces); SB3 algorithms "
                                   "need array spaces: train the LLM agents on it (--agent NAME-llm)")
    over = dict(overrides or {})
    if env_kwargs:
        over["env_kwargs"] = {**over.get("env_kwargs", {}), **env_kwargs}
    hp = load_hyperparams(algo, env_id, over, conf_file)
    callbacks = [_import_callback(n) for n in (hp["callback"] if isinstance(hp.get("callback"), list)
                                               else [hp["callback"]] if "callback" in hp else [])]
    if algo == "aihf":
        return _train_aihf(cls, env_id, hp, callbacks, seed, out, tensorboard_log, progress, overwrite)
    env = _build_env(env_id, hp, seed)
    _check_spaces(algo, env_id, env.observation_space, env.action_space)
    kwargs = _algo_kwargs(hp)
    try:
        model = cls(hp["policy"], env, seed=seed, device="cpu", **kwargs)
    except Exception as exc:
        env.close()
        raise HyperparamError(f"cannot build {ALGOS[algo]} for {env_id} with {kwargs}: "
                              f"{type(exc).__name__}: {exc}") from None
    from gymnasium import spaces

    from prefgym.sb3_files import safe_checkpoint_callback
    from prefgym.selfplay import ExploitabilityCallback, SelfPlayCallback

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_name = f"{algo}-{env_id.split('/')[-1]}-{stamp}"
    out_dir = prepare_output_dir(Path(out) if out is not None else Path("runs") / run_name, overwrite)
    model.set_logger(_logger(out_dir, tensorboard_log, run_name, verbose))
    sp = hp["selfplay"]
    cbs: list = []
    if sp:
        cbs.append(SelfPlayCallback(sp["snapshot_every"]))
    game = _tabular_game(env)
    exploit_cb = None
    from prefgym.games.markov import TabularMarkovGame

    if isinstance(game, TabularMarkovGame) and isinstance(env.action_space, spaces.Discrete):
        exploit_cb = ExploitabilityCallback(game, hp.get("exploitability_every", 2000),
                                            observe_step=bool(sp and sp["observe_step"]))
        cbs.append(exploit_cb)
    if "checkpoint_every" in hp:
        cbs.append(safe_checkpoint_callback(max(hp["checkpoint_every"] // env.num_envs, 1),
                                            out_dir / "checkpoints", name_prefix="model"))
    cbs += callbacks
    start = time.perf_counter()
    try:
        model.learn(hp["n_timesteps"], callback=cbs, progress_bar=progress and _has_progress_bar(),
                    tb_log_name=run_name)
    except PrefgymError:
        raise
    except Exception as exc:
        raise InvalidArgumentError(f"training stopped at {model.num_timesteps} steps: {type(exc).__name__}: "
                                   f"{exc} (partial run left in {out_dir})") from None
    finally:
        model.logger.close()
    runtime = time.perf_counter() - start
    _save_policy(model.policy, out_dir / "policy.safetensors")
    _rename_progress(out_dir)
    config = {
        "kind": RUN_KIND, "algo": algo, "algo_class": ALGOS[algo], "env": env_id,
        "hyperparams": _jsonable(hp), "seed": seed, "timesteps_done": int(model.num_timesteps),
        "runtime_s": round(runtime, 3), "out": str(out_dir), "tensorboard_log": tensorboard_log,
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    if sp:
        config["snapshots"] = int(cbs[0].num_snapshots)
    if exploit_cb is not None:
        rows = ["step,exploitability,average_exploitability"] + [
            f"{t},{e!r},{a!r}" for t, e, a in zip(exploit_cb.timesteps, exploit_cb.exploitability,
                                                  exploit_cb.average_exploitability, strict=True)]
        atomic_write_text(out_dir / "exploitability.csv", "\n".join(rows) + "\n")
        config["final_exploitability"] = exploit_cb.exploitability[-1]
        config["final_average_exploitability"] = exploit_cb.average_exploitability[-1]
        config["initial_exploitability"] = exploit_cb.exploitability[0]
    elif game is not None:
        config["final_exploitability"] = _exploitability(model, game, bool(sp and sp["observe_step"]))
    env.close()
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2, default=json_default))
    return config


def _has_progress_bar() -> bool:
    """SB3's progress bar needs tqdm and rich; without them training runs without one."""
    try:
        import rich  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _rename_progress(out_dir: Path) -> None:
    src = out_dir / "progress.csv"
    if src.exists():
        src.replace(out_dir / "metrics.csv")


def _jsonable(hp: dict) -> dict:
    out = copy.deepcopy(hp)
    pk = out.get("policy_kwargs")
    if isinstance(pk, dict) and inspect.isclass(pk.get("activation_fn")):
        pk["activation_fn"] = pk["activation_fn"].__name__.lower().replace("leakyrelu", "leaky_relu")
    return out


def _train_aihf(cls, env_id, hp, callbacks, seed, out, tensorboard_log, progress, overwrite) -> dict:
    import gymnasium

    task = _control_task(env_id)
    if task is None:
        raise InvalidArgumentError(f"--algo aihf trains on the control ids' base tasks; "
                                   f"{env_id!r} is not one")
    kwargs = _algo_kwargs(hp)
    for key in ("demonstrations", "preferences"):
        if kwargs.get(key) is None:
            raise HyperparamError(f"--algo aihf needs --hyperparams {key}=... (build the data with "
                                  f"`prefgym data expert|demos|preferences --env {task}`)")
    try:
        env = gymnasium.make(task, **hp["env_kwargs"])
    except Exception as exc:
        raise InvalidArgumentError(f"cannot make {task!r} with env_kwargs {hp['env_kwargs']}: "
                                   f"{type(exc).__name__}: {exc}") from None
    try:
        agent = cls(env, seed=seed, **kwargs)
    except PrefgymError:
        raise
    except Exception as exc:
        raise HyperparamError(f"cannot build AIHF on {task}: {type(exc).__name__}: {exc}") from None
    from stable_baselines3.common.callbacks import CheckpointCallback

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_name = f"aihf-{env_id.split('/')[-1]}-{stamp}"
    out_dir = prepare_output_dir(Path(out) if out is not None else Path("runs") / run_name, overwrite)
    agent.sac.set_logger(_logger(out_dir, tensorboard_log, run_name, False))
    cbs = list(callbacks)
    if "checkpoint_every" in hp:
        cbs.append(CheckpointCallback(hp["checkpoint_every"], str(out_dir / "checkpoints"),
                                      name_prefix="sac"))
    start = time.perf_counter()
    try:
        agent.learn(hp["n_timesteps"], callback=cbs or None, progress_bar=progress and _has_progress_bar())
    except PrefgymError:
        raise
    except Exception as exc:
        raise InvalidArgumentError(f"training stopped: {type(exc).__name__}: {exc} (partial run left in "
                                   f"{out_dir})") from None
    finally:
        agent.sac.logger.close()
    _save_policy(agent.sac.policy, out_dir / "policy.safetensors")
    _rename_progress(out_dir)
    config = {
        "kind": RUN_KIND, "algo": "aihf", "algo_class": "AIHF", "env": env_id, "base_task": task,
        "hyperparams": _jsonable(hp), "seed": seed, "timesteps_done": int(agent.sac.num_timesteps),
        "runtime_s": round(time.perf_counter() - start, 3), "out": str(out_dir),
        "tensorboard_log": tensorboard_log, "created": datetime.now().isoformat(timespec="seconds"),
    }
    env.close()
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2, default=json_default))
    return config


# ------------------------------------------------------------------ evaluate
def is_sb3_run(path: str | Path) -> bool:
    """Whether ``path`` is a run folder written by :func:`train_sb3`."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("kind") == RUN_KIND
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def _load_policy_into(policy, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        policy.load_state_dict(state)
    except Exception as exc:
        raise InvalidArgumentError(f"cannot load the policy weights {path}: "
                                   f"{type(exc).__name__}: {exc}") from None


def _rebuild(config: dict, run: Path):
    """The learner of a run (weights loaded) and the single-agent evaluation env."""
    import gymnasium

    algo, env_id = config["algo"], config["env"]
    hp = config["hyperparams"]
    if hp.get("policy_kwargs"):
        hp["policy_kwargs"] = _policy_kwargs(hp["policy_kwargs"], str(run / "config.json"))
    if algo == "aihf":
        from stable_baselines3 import SAC

        from prefgym.agents.aihf import DEFAULT_SAC_KWARGS

        env = gymnasium.make(config["base_task"], **hp.get("env_kwargs", {}))
        sac_kwargs = {**DEFAULT_SAC_KWARGS, **(hp.get("sac_kwargs") or {}), "buffer_size": 1}
        policy = sac_kwargs.pop("policy", "MlpPolicy")
        model = SAC(policy, env, device="cpu", **sac_kwargs)
        observe_step = False
    else:
        cls = _algo_class(algo)
        sp = hp.get("selfplay") or {}
        env = _build_env(env_id, {**hp, "selfplay": sp}, seed=0, n_envs=1)
        kwargs = _algo_kwargs(hp)
        if "buffer_size" in inspect.signature(cls.__init__).parameters:
            kwargs["buffer_size"] = 1
        with warnings.catch_warnings():  # e.g. PPO's batch-size advice for the one-env rebuild
            warnings.simplefilter("ignore", UserWarning)
            model = cls(hp["policy"], env, device="cpu", **kwargs)
        env.close()
        observe_step = bool(sp.get("observe_step", False))
        env = gymnasium.make(env_id, **_make_kwargs(env_id, hp.get("env_kwargs", {})))
        if observe_step:
            from prefgym.selfplay import StepObservation

            env = StepObservation(env)
    _load_policy_into(model.policy, run / "policy.safetensors")
    return model, env, observe_step


def evaluate_sb3(path: str | Path, episodes: int = 20, seed: int = 0) -> dict[str, Any]:
    """Mean return +- std over ``episodes`` against the default opponent; exact exploitability if tabular."""
    from gymnasium import spaces

    run = Path(path)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise InvalidArgumentError(f"--episodes must be an integer >= 1; got {episodes!r}")
    config = json.loads((run / "config.json").read_text())
    if not (run / "policy.safetensors").is_file():
        raise InvalidArgumentError(f"{run} has no policy.safetensors (did the run finish?)")
    model, env, observe_step = _rebuild(config, run)
    deterministic = isinstance(env.action_space, spaces.Box)
    returns, true_returns = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total, true_total = False, 0.0, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, term, trunc, info = env.step(action)
            total += float(reward)
            true_total += float(info.get("true_reward", 0.0))
            done = term or trunc
        returns.append(total)
        true_returns.append(true_total)
    res: dict[str, Any] = {
        "path": str(run), "algo": config["algo"], "env": config["env"], "episodes": episodes,
        "timesteps": config.get("timesteps_done"),
        "against": (f"of the base task {config['base_task']} (true reward)" if config["algo"] == "aihf"
                    else "against the env's default opponent (uniform random actions)"),
        "deterministic": deterministic,
        "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
    }
    if _control_task(config["env"]) is not None and config["algo"] != "aihf":
        res["mean_true_return"] = float(np.mean(true_returns))
        res["std_true_return"] = float(np.std(true_returns))
    game = getattr(env.unwrapped, "game", None)
    if game is not None and config["algo"] != "aihf":
        from prefgym.games import MatrixGame
        from prefgym.games.markov import TabularMarkovGame

        if isinstance(game, TabularMarkovGame | MatrixGame):
            res["exploitability"] = _exploitability(model, game, observe_step)
            res["uniform_exploitability"] = float(
                game.exploitability(game.uniform_policy() if isinstance(game, TabularMarkovGame)
                                    else np.full(game.n_actions, 1.0 / game.n_actions)))
    env.close()
    return res


def print_evaluation(res: dict) -> None:
    """The evaluation of an SB3 run in a few lines."""
    print(f"{res['algo']} on {res['env']} after {res['timesteps']} steps, from {res['path']}")
    print(f"return over {res['episodes']} episodes {res['against']}: "
          f"{res['mean_return']:.4g} +- {res['std_return']:.3g}")
    if "mean_true_return" in res:
        print(f"true task return: {res['mean_true_return']:.4g} +- {res['std_true_return']:.3g}")
    if res.get("exploitability") is not None:
        print(f"exact exploitability: {res['exploitability']:.4g} (uniform policy: "
              f"{res['uniform_exploitability']:.4g})")


# ------------------------------------------------------------------ CLI hooks
def add_train_arguments(p) -> None:
    """The ``--algo`` options of ``prefgym train``."""
    p.add_argument("--algo", default=None, choices=None, metavar="ALGO",
                   help="train an SB3 algorithm instead of a prefgym agent: " + ", ".join(ALGOS)
                        + " (self-play on the two-player ids; hyper-parameters from "
                          "prefgym/hyperparams/ALGO.yml)")
    p.add_argument("--hyperparams", nargs="+", default=[], metavar="KEY=VALUE",
                   help="--algo: hyper-parameter overrides (JSON/YAML values; a.b=v for nested keys)")
    p.add_argument("--conf-file", default=None, metavar="YAML",
                   help="--algo: hyper-parameter file (env id -> settings) instead of the shipped one")
    p.add_argument("--tensorboard-log", default=None, metavar="DIR",
                   help="--algo: also write TensorBoard event files under DIR/RUN_NAME")


def cmd_train_sb3(args) -> int:
    """``prefgym train --algo ...``."""
    from prefgym.cli_common import CLIError, parse_env_kwargs

    names = ("agent", "iterations", "lr", "task", "model", "resume", "device")
    clash = [f"--{n}" for n in names if getattr(args, n, None) is not None]
    clash += ["--param"] if getattr(args, "param", None) else []
    if clash:
        raise CLIError(f"{clash[0]} applies to prefgym's own agents (--agent); with --algo use --hyperparams")
    if args.env is None:
        raise CLIError("--algo needs --env (see `prefgym list`)")
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    cfg = train_sb3(args.algo, args.env, parse_overrides(args.hyperparams), args.conf_file, env_kwargs,
                    seed=args.seed, out=args.out, tensorboard_log=args.tensorboard_log,
                    progress=not args.no_progress, overwrite=bool(getattr(args, "overwrite", False)))
    print(f"{cfg['algo_class']} on {cfg['env']}: {cfg['timesteps_done']} steps in {cfg['runtime_s']:.1f} s"
          + (f", {cfg['snapshots']} self-play snapshots" if "snapshots" in cfg else ""))
    if cfg.get("final_exploitability") is not None:
        extra = (f" (average iterate {cfg['final_average_exploitability']:.4g}, at the start "
                 f"{cfg['initial_exploitability']:.4g})" if "final_average_exploitability" in cfg else "")
        print(f"exact exploitability: {cfg['final_exploitability']:.4g}{extra}")
    print(f"run folder: {cfg['out']}")
    return 0


def cmd_evaluate_sb3(args) -> int:
    """``prefgym evaluate RUN`` on a run of :func:`train_sb3`."""
    print_evaluation(evaluate_sb3(args.path, episodes=getattr(args, "episodes", 20), seed=args.seed))
    return 0

