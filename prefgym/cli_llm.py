"""The language-model side of the command line: ``prefgym train --agent NAME-llm`` run folders.

:func:`train_llm` trains a :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` on a built-in
task of :mod:`prefgym.llm_tasks` and writes a run folder (``config.json``,
``metrics.csv``, checkpoints, ``reference/``, a plot); :func:`evaluate_llm` measures the
latest checkpoint of such a folder. :mod:`prefgym.cli` dispatches here; both functions are
also usable from Python.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.cli_common import CLIError
from prefgym.cli_common import fmt as _fmt
from prefgym.serialization import json_default

__all__ = ["train_llm", "evaluate_llm", "llm_agent_names", "is_llm_agent", "get_llm_agent", "LLM_SUFFIX"]


# ---------------------------------------------------------------- LLM train
#: suffix of the CLI names of the language-model trainers (``omwu-llm``, ``nash-md-llm``, ...)
LLM_SUFFIX = "-llm"
#: trainer keyword arguments the CLI sets itself (not accepted through ``--param``)
LLM_RESERVED_PARAMS = ("output_dir", "resume_from", "evaluator", "source", "accelerator", "algorithm",
                       "policy", "judge", "prompts")
#: the default model: ``tiny_lm(**TINY_MODEL)``, the random-init GPT-2 of the LLM reproductions
TINY_MODEL = {"arch": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2, "seed": 0}
#: ``--task`` name of free-text training on a prompt dataset (``--prompts``)
TEXT_TASK = "prompts"
#: trainer defaults of free-text runs (small: a real model on a CPU)
TEXT_DEFAULTS = {"num_samples": 4, "steps_per_iteration": 2, "learning_rate": 1e-4, "logp_batch_size": 8}
#: default iterations of a free-text run
TEXT_ITERATIONS = 2
#: ``--lora`` without ``--param lora=...``: peft.LoraConfig arguments (peft picks the target modules)
DEFAULT_LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}


def llm_agent_names() -> dict[str, str]:
    """CLI name -> key of :data:`~prefgym.agents.llm.LLM_AGENTS` (``omwu-llm`` -> ``omwu``, ...)."""
    from prefgym.agents.llm import LLM_AGENT_SUMMARIES  # the same keys, without importing torch

    return {key.replace("_", "-") + LLM_SUFFIX: key for key in LLM_AGENT_SUMMARIES}


def is_llm_agent(name: str) -> bool:
    """Whether ``name`` names a language-model trainer (it ends with ``-llm`` or ``_llm``)."""
    return name.lower().replace("_", "-").endswith(LLM_SUFFIX)


def get_llm_agent(name: str) -> tuple[str, type]:
    """``(cli name, trainer class)`` of an LLM agent name (case-insensitive, ``-`` or ``_``)."""
    from prefgym.agents.llm import LLM_AGENTS

    names = llm_agent_names()
    key = name.lower().replace("_", "-")
    if key not in names:
        raise CLIError(f"unknown LLM agent {name!r}; choose from {sorted(names)}")
    return key, LLM_AGENTS[names[key]]


def _load_lm(model: str | None, device: str | None):
    """The initial :class:`~prefgym.llm.policy.LMPolicy` with a frozen copy as reference model."""
    import copy

    from prefgym.llm.policy import LMPolicy

    kw = {} if device is None else {"device": device}
    if model is None:
        from prefgym.llm.tiny import tiny_lm

        net, tok = tiny_lm(**TINY_MODEL)
        try:
            return LMPolicy(net, tok, reference_model=copy.deepcopy(net), **kw)
        except (RuntimeError, AssertionError, ValueError) as exc:  # unknown or unavailable device
            msg = " ".join(str(exc).split())[:300]
            raise CLIError(f"cannot put the model on --device {device}: {type(exc).__name__}: "
                           f"{msg}") from None
    from prefgym.llm.pretrained import KNOWN_MODELS, resolve_model

    if not Path(model).expanduser().exists() and model.lower().replace("_", "-") not in KNOWN_MODELS:
        raise CLIError(f"--model {model}: no such folder or file (pass a save_pretrained folder, a .gguf "
                       f"file or a known name: {sorted(KNOWN_MODELS)}); nothing is downloaded")
    path = resolve_model(model)  # a known name, a .gguf file or a save_pretrained folder; errors in one line
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return LMPolicy.from_pretrained(path, reference="copy", **kw)
    except Exception as exc:  # not a model folder, unknown architecture, bad device: a user error
        msg = " ".join(str(exc).split())[:300]
        raise CLIError(f"cannot load a causal LM from --model {model}: {type(exc).__name__}: {msg}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None


def _llm_run_config(path: Path) -> dict[str, Any] | None:
    """The CLI config of an LLM run folder, or ``None`` if ``path`` is not one."""
    cfg_path = path / "config.json"
    if not (path.is_dir() and cfg_path.exists()):
        return None
    cfg = _read_json(cfg_path)
    return cfg if cfg.get("kind") == "llm" else None


def _resumed_arguments(resume: str | Path, **given) -> dict[str, Any]:
    """The arguments of the run in folder ``resume`` (agent, task, model, params, the free-text
    settings, device, iterations); each ``given`` one that is not None must match the run's."""
    run = Path(resume)
    saved = _llm_run_config(run)
    if saved is None:
        raise CLIError(f"--resume {resume}: not a run folder of `prefgym train --agent ...-llm` "
                       "(no config.json of kind 'llm')")
    for name in ("agent", "task", "model"):
        canon = {"agent": lambda g: get_llm_agent(g)[0],
                 "task": lambda g: TEXT_TASK if g == TEXT_TASK else _task_name(g)}.get(name, str)
        if given[name] is not None and canon(given[name]) != saved[name]:
            raise CLIError(f"--resume {resume}: the run has {name} {saved[name]!r}, not {given[name]!r} "
                           "(leave it out to reuse the run's)")
    old = saved["params"]
    changed = sorted(k for k, v in (given["params"] or {}).items() if k not in old or old[k] != v)
    if changed:
        key = changed[0]
        had = f"{key}={old[key]!r}" if key in old else f"the default {key}"
        raise CLIError(f"--resume {resume}: cannot change {key} (the run has {had}); leave it out to "
                       "reuse the run's")
    text_saved = saved.get("text") or {}
    for name in ("prompts", "judge", "max_new_tokens", "limit"):
        value = given[name]
        want = str(Path(value).resolve()) if name == "prompts" and value is not None else value
        if value is not None and text_saved.get(name) != want:
            raise CLIError(f"--resume {resume}: the run has {name} {text_saved.get(name)!r}, not "
                           f"{value!r} (leave it out to reuse the run's)")
    out = {"agent": saved["agent"], "task": saved["task"], "model": saved["model"], "params": saved["params"],
           "device": saved.get("device"), "iterations": int(saved["iterations"]),
           "prompts": given["prompts"], "judge": given["judge"], "max_new_tokens": given["max_new_tokens"],
           "limit": given["limit"]}
    if saved["task"] == TEXT_TASK:
        out.update(prompts=text_saved["prompts"], judge=text_saved["judge"],
                   max_new_tokens=text_saved.get("max_new_tokens"), limit=text_saved.get("limit"))
    return out


def _task_spec(text: bool, task: str | None, judge: str | None, limit: int | None):
    """The built-in task's spec, or None for free-text training (``--prompts``)."""
    from prefgym.llm_tasks import get_task

    if not text and (judge is not None or limit is not None):
        raise CLIError("--judge / --limit apply to free-text training on a prompt dataset (--prompts FILE)")
    if text:
        if task is not None and task != TEXT_TASK:
            raise CLIError(f"--prompts trains on free text from a prompt dataset; leave out --task {task}")
        return None
    try:
        return get_task(task or "menu")
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _checked_params(params: dict[str, Any] | None, lora: bool) -> dict[str, Any]:
    """A copy of ``params`` without keys the command sets, with the default LoRA if ``lora``."""
    params = dict(params or {})
    reserved = sorted(set(params) & set(LLM_RESERVED_PARAMS))
    if reserved:
        raise CLIError(f"--param {reserved[0]} is set by the command itself; use --out / --resume")
    if lora and "lora" not in params:
        params["lora"] = dict(DEFAULT_LORA)
    return params


def _llm_run_dir(out: str | Path | None, name: str, spec_name: str, new_run: bool, overwrite: bool) -> Path:
    """The run folder (default ``runs/<agent>-<task>-<timestamp>``); a new run gets it ready:
    a folder holding a run is refused without ``overwrite``, and emptied in one step with it."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(out) if out is not None else Path("runs") / f"{name}-{spec_name}-{stamp}"
    if new_run and (out_dir / "latest").exists() and not overwrite:
        raise CLIError(f"{out_dir} already holds a run; continue it with --resume {out_dir}, pick another "
                       "--out or pass --overwrite")
    if new_run:
        from prefgym.fileio import empty_dir, prepare_output_dir

        prepare_output_dir(out_dir, overwrite=overwrite)
        if overwrite:
            empty_dir(out_dir)  # the old run goes in one step: never a mix of old and new files
    return out_dir


def _text_judge(lm, records, judge: str, max_new_tokens: int | None):
    """Free-text policy settings on ``lm`` (reply cap, prompt windows checked) and the judge."""
    from prefgym.judges.registry import judge_from_spec

    _set_max_new_tokens(lm, max_new_tokens)
    _check_prompt_windows(lm, [r.prompt for r in records])
    return judge_from_spec(judge, records)


def train_llm(
    agent: str | None = "omwu-llm",
    task: str | None = "menu",
    model: str | None = None,
    iterations: int | None = None,
    params: dict[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    resume: str | Path | None = None,
    device: str | None = None,
    overwrite: bool = False,
    prompts: str | Path | None = None,
    judge: str | None = None,
    lora: bool = False,
    max_new_tokens: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Train a language-model self-play trainer on a built-in task and write a run folder; return its config.

    Parameters
    ----------
    agent
        CLI name of the trainer: a key of :data:`~prefgym.agents.llm.LLM_AGENTS` with
        ``_`` as ``-`` and the suffix ``-llm`` (``omwu-llm``, ``mpo-llm``, ``spo-llm``, ...).
    task
        A key of :data:`~prefgym.llm_tasks.LLM_TASKS` (``prefgym list`` prints them all).
    model
        A local folder written by ``save_pretrained`` (model and tokenizer); ``None``: the
        tiny random-init GPT-2 built from :data:`TINY_MODEL`, as the reproductions do. The
        reference (initial) policy is a frozen copy.
    iterations
        Total iterations of the run (on resume: the target, counting the iterations done);
        default the task's.
    params
        Trainer keyword arguments: trainer settings (``learning_rate``, ``steps_per_iteration``,
        ``num_samples``, ``save_every``, ``lora``, ``seed``, ...) and the algorithm's
        hyper-parameters (``eta``, ``alpha``, ``beta``, ...), over the task's defaults.
    out
        The run folder (default ``runs/<agent>-<task>-<timestamp>``).
    progress
        Show a progress bar.
    resume
        A run folder of this command: rebuild its trainer from its ``config.json`` and latest
        checkpoint and train on to ``iterations``. ``agent``, ``task``, ``model``, ``params``
        may be left out; given, they must match the run's.
    device
        Device of the policy (``"cpu"``, ``"cuda"``, ...); default CPU (on resume: the run's).
    overwrite
        Start a new run in a non-empty ``out`` folder: its old contents are replaced in one
        step (otherwise :class:`~prefgym.errors.OutputExistsError`, or a hint to ``--resume``).
    prompts
        Free-text training instead of a built-in task: a prompt dataset
        (:func:`prefgym.data.prompts.load_prompt_dataset`: JSONL, Parquet, Arrow or a
        ``save_to_disk`` folder); the policy samples ``num_samples`` replies per prompt
        (under its chat template) and ``judge`` compares them (task ``prompts``).
    judge
        With ``prompts``: ``exact-answer`` (default), ``lm:NAME_OR_PATH`` or ``rm:PATH``
        (:func:`prefgym.judges.registry.judge_from_spec`).
    lora
        Train LoRA adapters (:data:`DEFAULT_LORA`) unless ``params`` sets ``lora``.
    max_new_tokens
        Reply length cap of the policy (default 32).
    limit
        With ``prompts``: use the first ``limit`` records.

    Raises
    ------
    CLIError
        On an unknown agent or task, bad parameters, a missing model folder, or a resume
        that does not fit the run.
    """
    from prefgym import __version__
    from prefgym.llm_tasks import build_task

    if resume is not None:
        r = _resumed_arguments(resume, agent=agent, task=task, model=model, params=params, prompts=prompts,
                               judge=judge, max_new_tokens=max_new_tokens, limit=limit)
        agent, task, model, params = r["agent"], r["task"], r["model"], r["params"]
        prompts, judge, max_new_tokens, limit = r["prompts"], r["judge"], r["max_new_tokens"], r["limit"]
        lora = False  # the saved params hold it
        device = r["device"] if device is None else device
        out = Path(resume)
        if iterations is None:
            iterations = r["iterations"]
    name, cls = get_llm_agent(agent or "omwu-llm")
    text = prompts is not None
    spec = _task_spec(text, task, judge, limit)
    if iterations is None:
        iterations = TEXT_ITERATIONS if spec is None else spec.iterations
    if int(iterations) != iterations or iterations < 1:
        raise CLIError(f"--iterations must be a positive integer; got {iterations}")
    params = _checked_params(params, lora)
    records = None
    if text:
        from prefgym.data.prompts import load_prompt_dataset

        records = load_prompt_dataset(prompts, limit=limit)  # a bad file or column: one line, before a model
        text_defaults = {**TEXT_DEFAULTS, "prompts_per_iteration": min(8, len(records))}
        trainer_kw = {**text_defaults, **params}
        spec_name = TEXT_TASK
    else:
        trainer_kw = {**spec.trainer_defaults, **params}
        spec_name = spec.name
    out_dir = _llm_run_dir(out, name, spec_name, new_run=resume is None, overwrite=overwrite)

    import torch

    threads = torch.get_num_threads()
    if model is None:
        torch.set_num_threads(1)  # tiny model: one thread is fastest and keeps runs reproducible
    try:
        lm = _load_lm(model, device)
        algo = cls.algorithm_class.name
        text_info: dict[str, Any] | None = None
        if text:
            judge = judge or "exact-answer"
            judge_obj = _text_judge(lm, records, judge, max_new_tokens)
            text_info = {"prompts": str(Path(prompts).resolve()), "judge": judge, "limit": limit,
                         "max_new_tokens": max_new_tokens, "num_prompts": len(records)}
        try:
            if text:
                from prefgym.llm_tasks import build_text_task

                setup = build_text_task(lm, judge_obj, [r.prompt for r in records])
            else:
                setup = build_task(spec.name, lm, algo, trainer_kw)
            trainer = setup.make_trainer(cls, output_dir=out_dir, resume_from=out_dir if resume else None,
                                         **trainer_kw)
        except (TypeError, ValueError, FileNotFoundError, ImportError) as exc:  # ImportError: lora, no peft
            raise CLIError(f"cannot build {cls.__name__} on task {spec_name!r} with parameters {params}: "
                           f"{exc}") from None
        done = trainer.num_iterations
        if done >= iterations:
            raise CLIError(f"{out_dir} already has {done} iterations; pass --iterations N > {done} to go on")
        config: dict[str, Any] = {
            "kind": "llm", "agent": name, "agent_class": cls.__name__, "algorithm": algo,
            "task": spec_name,
            "task_description": "free text on a prompt dataset" if text else spec.description,
            "task_info": setup.info, "text": text_info,
            "model": model, "model_config": TINY_MODEL if model is None else None, "device": device,
            "params": params, "trainer_params": trainer_kw, "trainer_config": trainer.config.to_dict(),
            "iterations": int(iterations),
            "metric": setup.metric, "metric_label": setup.metric_label,
            "prefgym_version": __version__, "out": str(out_dir),
        }
        if resume is not None:
            config["resumed_from"] = str(trainer.resumed_from)
            config["resumed_at"] = done

        def write_config(extra: dict[str, Any] | None = None) -> None:
            from prefgym.fileio import atomic_write

            out_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(out_dir / "config.json", "w") as fh:  # the trainer's own settings: trainer.json
                json.dump({**config, **(extra or {})}, fh, indent=2, default=json_default)

        write_config({"updates_done": trainer.num_iterations})

        start = time.perf_counter()
        try:
            trainer.learn(int(iterations) - done, progress_bar=progress)
        except (TypeError, ValueError) as exc:  # e.g. a hyper-parameter the algorithm rejects when used
            raise CLIError(f"{cls.__name__} failed on task {spec_name!r}: {exc}") from None
        finally:
            trainer.logger.close()  # metrics.csv (and TensorBoard) complete and closed
        runtime = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    trainer.checkpoint()  # the last iteration, whatever save_every
    metrics = trainer.metrics
    initial = trainer.initial_metrics.get(setup.metric)
    plot = _plot_llm_metric(metrics, setup, name, spec_name, out_dir, initial)
    last = {k: float(v[-1]) for k, v in metrics.items() if k != "iteration" and np.isfinite(v[-1])}
    write_config({
        "updates_done": trainer.num_iterations, "runtime_s": round(runtime, 3),
        "created": datetime.now().isoformat(timespec="seconds"),
        "final_metric": last.get(setup.metric), "initial_metric": trainer.initial_metrics.get(setup.metric),
        "final_metrics": last, "initial_metrics": trainer.initial_metrics,
        "checkpoint": str(trainer.resolve_checkpoint(out_dir)), "plot": plot.name,
    })
    return _read_json(out_dir / "config.json")


def _set_max_new_tokens(lm, max_new_tokens: int | None) -> None:
    """Free-text policy settings: the reply cap, and under a chat template no one-line stop
    (a chat turn ends at EOS; the exact-answer judge reads the last number of the reply)."""
    if lm.uses_chat_template:
        lm.stop_strings = ()
    if max_new_tokens is not None:
        try:
            lm._check_max_new(max_new_tokens)
        except ValueError as exc:
            raise CLIError(f"--max-new-tokens: {exc}") from None
        lm.max_new_tokens = int(max_new_tokens)


def _check_prompt_windows(lm, prompts: list) -> None:
    """Every prompt plus ``max_new_tokens`` fits the model's context: else one error, before training."""
    ids = lm.encode_prompts(prompts)
    try:
        lm._check_window([len(i) for i in ids], lm.max_new_tokens, "prompt")
    except ValueError as exc:
        raise CLIError(f"--prompts: {exc}") from None


def _task_name(task: str) -> str:
    from prefgym.llm_tasks import get_task

    try:
        return get_task(task).name
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _plot_llm_metric(metrics: dict[str, np.ndarray], setup, agent: str, task: str, out_dir: Path,
                     initial: float | None = None) -> Path:
    """Figure of the task's main metric per iteration: ``gap.png``, ``kl_target.png`` or ``win_rate.png``."""
    from prefgym.plotting import plot_curves

    files = {"gap_mean": "gap.png", "kl_target_mean": "kl_target.png", "win_rate_vs_initial": "win_rate.png"}
    y = metrics.get(setup.metric, np.full(len(metrics.get("iteration", [])), np.nan))
    win = setup.metric == "win_rate_vs_initial"
    curves, styles = {agent: y}, {}
    if initial is not None:
        curves["initial model"] = np.full(len(y), float(initial))
        styles["initial model"] = {"color": "grey", "linestyle": "--", "linewidth": 0.9}
    return plot_curves(curves, out_dir / files.get(setup.metric, "metric.png"), xlabel="iteration",
                       title=f"{agent} on task {task}", ylabel=setup.metric_label, logy=not win,
                       floor=None if win else 1e-12, styles=styles)



def evaluate_llm(path: str | Path, num_samples: int | None = None, seed: int = 0,
                 prompts: str | Path | None = None, limit: int | None = None) -> dict[str, Any]:
    """Evaluate the latest checkpoint of an LLM run folder on its task.

    A free-text run (``--prompts``) is evaluated on the prompt dataset ``prompts`` (default:
    the training prompts; pass a held-out split), first ``limit`` records, by
    :func:`~prefgym.llm_tasks.evaluate_text`: greedy accuracy of the policy and of
    the base model (exact-answer judge), greedy win rate against the base model with a
    bootstrap interval, and ``num_samples`` (default 2) sampled paired comparisons per prompt
    with Wilson's interval. Other runs: ``num_samples`` defaults to 64, as follows.

    Always: the win rate against the initial (reference) model from ``num_samples``
    paired comparisons per prompt (per task for ``dialogue`` and ``reasoning``) with Bernoulli outcomes and
    Wilson's 95% interval (``win_rate_vs_initial``), and the exact win rate
    (``exact_win_rate_vs_initial``). On a menu task also the exact duality gap per prompt
    (``gap_mean``, ``gap_max``, ``gap_per_prompt``, ``initial_gap_mean``), the response
    distributions and the menu games' Nash equilibria; see
    :mod:`prefgym.llm_tasks`.

    The policy is reloaded from the checkpoint's ``policy/`` folder with the run's
    ``reference/`` model (a LoRA run is rebuilt from its base model instead).
    """
    from prefgym.agents.llm.model_io import _build_policy
    from prefgym.agents.llm.trainer import SelfPlayTrainer
    from prefgym.llm_tasks import build_task

    run = Path(path)
    cfg = _llm_run_config(run)
    if cfg is None:
        raise CLIError(f"{run} is not a run folder of `prefgym train --agent ...-llm`")
    text = cfg["task"] == TEXT_TASK
    if num_samples is None:
        num_samples = 2 if text else 64
    if int(num_samples) < (0 if text else 1):
        raise CLIError(f"--samples must be a positive integer; got {num_samples}")
    if not text and (prompts is not None or limit is not None):
        raise CLIError("--prompts / --limit apply to runs trained on a prompt dataset (train --prompts)")
    try:
        ckpt = SelfPlayTrainer.resolve_checkpoint(run)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    tcfg = _read_json(ckpt / "trainer.json")
    import torch

    threads = torch.get_num_threads()
    if cfg["model"] is None:
        torch.set_num_threads(1)
    try:
        if text:
            result = _evaluate_text_run(cfg, tcfg, ckpt, prompts, limit, int(num_samples), int(seed))
        elif tcfg["hparams"].get("lora") is not None:  # adapters only: rebuild on the base model, then load
            _, cls = get_llm_agent(cfg["agent"])
            lm = _load_lm(cfg["model"], cfg.get("device"))
            setup = build_task(cfg["task"], lm, cfg["algorithm"], cfg["trainer_params"])
            policy = setup.make_trainer(cls, resume_from=ckpt, **cfg["trainer_params"]).policy
        else:  # the LMPolicy of the checkpoint with the run's reference/ (the task wraps it in its menu)
            lm = _build_policy(ckpt, {**tcfg["policy"], "menu": None}, cfg.get("device"))
            setup = build_task(cfg["task"], lm, cfg["algorithm"], cfg["trainer_params"])
            policy = setup.policy
        if not text:
            result = setup.evaluate(policy, int(num_samples), int(seed))
    finally:
        torch.set_num_threads(threads)
    return {"path": str(run), "checkpoint": str(ckpt), "agent": cfg["agent"],
            "agent_class": cfg["agent_class"], "task": cfg["task"], "updates": int(tcfg["num_iterations"]),
            "model": cfg["model"] or "tiny", "num_samples": int(num_samples), "seed": int(seed), **result}



def _evaluate_text_run(cfg, tcfg, ckpt: Path, prompts, limit, num_samples: int, seed: int) -> dict[str, Any]:
    """Rebuild a free-text run's policy (LoRA adapters onto the base model, or the full
    checkpoint with the run's reference) and evaluate it on a prompt dataset."""
    from prefgym.agents.llm.model_io import _build_policy
    from prefgym.data.prompts import load_prompt_dataset
    from prefgym.judges.registry import judge_from_spec
    from prefgym.llm_tasks import build_text_task, evaluate_text

    info = cfg["text"]
    source = prompts if prompts is not None else info["prompts"]
    records = load_prompt_dataset(source, limit=limit if prompts is not None else info.get("limit"))
    judge = judge_from_spec(info["judge"], records)
    if tcfg["hparams"].get("lora") is not None:
        _, cls = get_llm_agent(cfg["agent"])
        lm = _load_lm(cfg["model"], cfg.get("device"))
        _set_max_new_tokens(lm, info.get("max_new_tokens"))
        setup = build_text_task(lm, judge, [r.prompt for r in records])
        kw = {k: v for k, v in cfg["trainer_params"].items() if k != "prompts_per_iteration"}
        policy = setup.make_trainer(cls, resume_from=ckpt, **kw).policy
    else:
        policy = _build_policy(ckpt, {**tcfg["policy"], "menu": None}, cfg.get("device"))
    _check_prompt_windows(policy, [r.prompt for r in records])
    res = evaluate_text(policy, judge, [r.prompt for r in records], num_samples, seed)
    return {**res, "eval_prompts": str(source), "judge": info["judge"]}


def _cmd_train_llm(args: argparse.Namespace, params: dict[str, Any]) -> int:
    if args.env is not None or args.env_kwargs is not None:
        raise CLIError("--env / --env-kwargs apply to the matrix- and Markov-game agents; the LLM agents "
                       "take --task")
    cfg = train_llm(args.agent, args.task, args.model, args.iterations, params or None, args.out,
                    progress=not args.no_progress, resume=args.resume, device=args.device,
                    overwrite=bool(getattr(args, "overwrite", False)),
                    prompts=args.prompts, judge=args.judge, lora=args.lora,
                    max_new_tokens=args.max_new_tokens, limit=args.limit)
    model = cfg["model"] or "tiny GPT-2"
    start = f", resumed at iteration {cfg['resumed_at']}" if "resumed_at" in cfg else ""
    print(f"{cfg['agent_class']} ({cfg['agent']}) on task {cfg['task']} with {model}: "
          f"{cfg['updates_done']} iteration{'s' * (cfg['updates_done'] != 1)}{start}, "
          f"{cfg['runtime_s']:.2f} s")
    init = cfg.get("initial_metric")
    print(f"final {cfg['metric_label']}: {_fmt(cfg['final_metric'])}"
          + (f" (initial model {_fmt(init)})" if init is not None else ""))
    print(f"run folder: {cfg['out']}")
    return 0


def _print_text_evaluation(res: dict[str, Any]) -> None:
    def ci(d: dict[str, Any], how: str) -> str:
        return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}] ({how} 95%, n={d['n']})"

    print(f"{res['agent_class']} ({res['agent']}) on {res['model']}, free text, after {res['updates']} "
          f"iterations, from {res['checkpoint']}")
    print(f"held-out prompts: {res['eval_prompts']} ({res['prompts']}), judge {res['judge']}")
    if "accuracy" in res:
        print(f"greedy accuracy: {ci(res['accuracy'], 'Wilson')}; base model "
              f"{ci(res['base_accuracy'], 'Wilson')}")
    print(f"greedy win rate vs the base model: {ci(res['greedy_win_rate_vs_base'], 'bootstrap')}")
    if "win_rate_vs_initial" in res:
        print(f"sampled win rate vs the base model: {ci(res['win_rate_vs_initial'], 'Wilson')}")


def _print_llm_evaluation(res: dict[str, Any]) -> None:
    if res.get("task") == TEXT_TASK:
        _print_text_evaluation(res)
        return
    wr = res["win_rate_vs_initial"]
    print(f"{res['agent_class']} ({res['agent']}) on task {res['task']} after {res['updates']} iterations, "
          f"from {res['checkpoint']}")
    print(f"win rate vs the initial model: {wr['mean']:.3f} [{wr['low']:.3f}, {wr['high']:.3f}] "
          f"(Wilson 95%, n={wr['n']}); exact {res['exact_win_rate_vs_initial']:.4f}")
    if "gap_mean" in res:
        print(f"exact duality gap: mean {_fmt(res['gap_mean'])}, max {_fmt(res['gap_max'])} over prompts "
              f"(initial model {_fmt(res['initial_gap_mean'])}); L1 to the Nash equilibrium "
              f"{_fmt(res['l1_to_nash_mean'])}")
    if "kl_target_mean" in res:
        print(f"KL(target || pi): mean {_fmt(res['kl_target_mean'])}, max {_fmt(res['kl_target_max'])}")
    if "correct" in res:
        print(f"expected correct replies per dialogue: {res['correct']:.3f} of {res['horizon']} "
              f"(initial model {res['initial_correct']:.3f})")


