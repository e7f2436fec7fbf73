"""The shared iterative self-play loop for language-model policies.

One iteration ``t`` of :class:`SelfPlayTrainer`:

1. pick the iteration's states (prompts; ``prompts_per_iteration`` of them, or all);
2. collect ``K`` responses per state from ``pi_t`` (:class:`~prefgym.agents.llm.sources.SampledResponses`:
   one batched ``generate`` call) or enumerate a menu
   (:class:`~prefgym.agents.llm.sources.MenuResponses`), let the judge
   compare every pair (one batched call), and build the iteration's
   :class:`~prefgym.agents.llm.algorithms.SelfPlayBatch`;
3. let the algorithm add what it needs (win rates against the previous iterate, the
   magnet, a geometric mixture; best/worst pairs);
4. take ``steps_per_iteration`` optimiser steps on the algorithm's loss;
5. refresh frozen models as the algorithm says (previous iterate, magnet);
6. run the evaluator, checkpoint, and log one row of metrics through the trainer's
   logger (SB3's ``Logger`` API; by default ``output_dir/metrics.csv`` and, optionally,
   TensorBoard; :meth:`~SelfPlayTrainer.set_logger` replaces it).

The Agent API is :class:`~prefgym.agents.base.BaseAgent`'s, SB3's: ``learn(total_timesteps,
callback, log_interval=1, ...)`` runs ``total_timesteps`` more iterations (one timestep is
one iteration), SB3 callbacks see the trainer as their ``model`` (``get_env()`` is None:
callbacks that need an environment do not apply); ``save`` / ``load`` write and read a
checkpoint folder (model and tokenizer through ``save_pretrained``; the weight I/O and the
frozen-model views are in :mod:`prefgym.agents.llm.model_io`).

Determinism and resuming
------------------------
Every random draw of iteration ``t`` is seeded from ``(seed, t, purpose, rank)``
(prompt choice, generation, opponent samples, Bernoulli labels, and torch's global
RNG inside the iteration, which ``fork_rng`` restores afterwards), so an iteration
depends only on the model, optimiser and algorithm state at its start. With
``output_dir`` the trainer checkpoints after every ``save_every`` iterations:
``policy/`` (``save_pretrained``), ``snapshots/<name>/`` (frozen previous iterate or
magnet), ``trainer_state.pt`` (optimiser, scheduler, RNG states, iteration counter,
algorithm state, metrics history) and ``trainer.json`` (hyper-parameters). A run
killed at any point restarts from its last checkpoint with ``resume_from=output_dir``
and, given the same remaining iterations, ends bit-identical to an uninterrupted run
on the same hardware (tested).

Multi-process runs (``accelerate launch``)
-----------------------------------------
Pass ``accelerator=True`` (or an ``accelerate.Accelerator``). Each process takes the
slice ``rank::world`` of the iteration's prompts and its own sampling seeds; after
``accelerator.backward`` the gradients are averaged over processes with
``accelerator.reduce`` (the all-reduce DDP performs, without wrapping the model, so
generation and teacher forcing use the plain ``transformers`` model); metrics are
averaged the same way; only the main process writes checkpoints and logs. The model
must already sit on ``accelerator.device`` (``LMPolicy(..., device=accelerator.device)``).
Not covered yet: mixed precision through ``accelerator.prepare`` (train in the
model's dtype), FSDP / DeepSpeed sharding, gradient accumulation.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from prefgym.agents.base import BaseAgent
from prefgym.agents.llm.algorithms import (
    SelfPlayAlgorithm,
    SelfPlayBatch,
)
from prefgym.agents.llm.checkpointing import (  # noqa: F401 - re-exported: defined here before
    CONFIG_FILE,
    LATEST_FILE,
    STATE_FILE,
    TRAINER_FORMAT,
    TRAINER_FORMAT_VERSION,
    TrainerCheckpointing,
)
from prefgym.agents.llm.config import SelfPlayConfig
from prefgym.agents.llm.menu import MenuPolicy
from prefgym.agents.llm.metrics_log import TrainerLogging
from prefgym.agents.llm.model_io import (
    _build_policy,
    _quiet,
    apply_lora,
    policy_view,
)
from prefgym.agents.llm.optim import (  # noqa: F401 - _lr_lambda, _same_device: defined here before
    _lr_lambda,
    _same_device,
    all_reduce_grads,
    make_accelerator,
    make_optimizer,
    make_scheduler,
)
from prefgym.agents.llm.sources import (
    MenuResponses,
    ResponseSource,
    SampledResponses,
    _batch_to,
    leave_one_out_weights,
)
from prefgym.agents.llm.timing import PhaseTimes
from prefgym.errors import AgentLoadError, InvalidArgumentError, InvalidTypeError, PrefgymError
from prefgym.fileio import atomic_write, staged_output_dir
from prefgym.judges.base import PairwiseJudge
from prefgym.serialization import json_default

__all__ = [  # the sources and model helpers are re-exported: they were defined here before
    "ResponseSource",
    "SampledResponses",
    "MenuResponses",
    "SelfPlayTrainer",
    "SelfPlayConfig",
    "policy_view",
    "apply_lora",
    "leave_one_out_weights",
]


def _checked_prompts(prompts, source) -> list:
    """A non-empty list of prompt strings, or of checked chat conversations (default sources only)."""
    if isinstance(prompts, str) or not isinstance(prompts, Iterable):
        hint = " (wrap a single prompt in a list)" if isinstance(prompts, str) else ""
        raise InvalidTypeError(f"prompts must be a non-empty sequence of strings; got "
                               f"{type(prompts).__name__}{hint}")
    prompts = list(prompts)
    if not prompts:
        raise InvalidArgumentError("prompts must be a non-empty sequence of strings or chat "
                                   "conversations; got an empty one")
    if any(not isinstance(p, str) for p in prompts):  # chat messages (judges see prompt_text)
        from prefgym.llm.chat import check_prompt

        if source is not None:
            raise InvalidArgumentError("prompts must be strings with a custom source; chat conversations "
                                       "work with the default sources (sampled replies or a menu)")
        prompts = [check_prompt(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    return prompts


def _split_config(config: SelfPlayConfig | None, kwargs: dict[str, Any]) -> tuple[SelfPlayConfig, dict]:
    """``(config, algorithm keyword arguments)``: the config fields among ``kwargs`` build a
    :class:`SelfPlayConfig` (or must be absent when ``config`` is given); the rest are the algorithm's."""
    fields = SelfPlayConfig.field_names()
    settings = {k: v for k, v in kwargs.items() if k in fields}
    rest = {k: v for k, v in kwargs.items() if k not in fields}
    if config is None:
        return SelfPlayConfig(**settings), rest
    if not isinstance(config, SelfPlayConfig):
        raise InvalidTypeError(f"config must be a SelfPlayConfig; got {type(config).__name__}")
    if settings:
        raise InvalidArgumentError(f"{sorted(settings)} given both as keyword arguments and through "
                                   "config=; set them in the config (dataclasses.replace(config, ...))")
    return config, rest


def _check_judge(judge, source) -> None:
    """Without a custom source, the judge must be a :class:`PairwiseJudge`."""
    if source is None and judge is None:
        raise InvalidArgumentError("judge is required: a prefgym.judges.PairwiseJudge that scores "
                                   "P(a beats b | context)")
    if source is None and not isinstance(judge, PairwiseJudge):
        raise InvalidTypeError("judge must be a prefgym.judges.PairwiseJudge (P(a beats b | context)); "
                               f"got {type(judge).__name__}")


class SelfPlayTrainer(TrainerCheckpointing, TrainerLogging, BaseAgent):
    """Iterative self-play for a ``transformers`` policy under a pairwise judge.

    Parameters
    ----------
    policy
        An :class:`~prefgym.llm.policy.LMPolicy` (responses are sampled) or a
        :class:`~prefgym.agents.llm.menu.MenuPolicy` (responses come from its menu). Its
        model is trained in place (dropout off, as in TRL's RLHF trainers); a reference
        model, when the algorithm needs one, is the policy's ``reference_model``.
    judge
        A :class:`~prefgym.judges.base.PairwiseJudge`.
    prompts
        The states to train on.
    algorithm
        Name in :data:`~prefgym.agents.llm.algorithms.ALGORITHMS` or an instance;
        the per-algorithm subclasses (:class:`OMWUTrainer`, ...) fix it and take its
        hyper-parameters as keyword arguments.
    config
        A :class:`~prefgym.agents.llm.config.SelfPlayConfig` with the settings below
        (``num_samples`` ... ``verbose``); or leave it out and pass them as keyword
        arguments, which build the config. Not both for one setting.
    num_samples
        ``K`` responses per prompt (sampled policies, and menus with ``exact=False``).
    exact
        Menu policies only: enumerate the menu (default ``True``).
    prompts_per_iteration
        Prompts drawn (without replacement) per iteration; ``None``: all, in order.
    steps_per_iteration
        Optimiser steps per iteration on the iteration's data (000's ``m``); with
        ``step_kl_tol`` the least number of steps.
    step_kl_tol, max_steps_per_iteration
        Solve each iteration's subproblem to a tolerance instead of a fixed step count
        (default ``None``: off, exactly ``steps_per_iteration`` steps). On an enumerated
        menu and for an algorithm with a closed-form step (``exact_step``: OMWU, OMPO, SPPO,
        MPO, Nash-MD, ...), after ``steps_per_iteration`` steps the loop keeps stepping until
        ``KL(exact step || pi_theta) <= step_kl_tol`` (mean over the iteration's states,
        averaged over processes) or ``max_steps_per_iteration`` steps in all (default 16 x
        ``steps_per_iteration``); the count is logged as ``inner_steps``. This is the
        nested optimisation of 002 App. D.2 ("at most K steps or until ..."), with the
        exact step as the stopping test. Algorithms without a closed form (DPO) keep the
        fixed count. A non-constant ``lr_schedule`` counts optimiser steps, so it then ends
        early.
    learning_rate, optimizer, weight_decay, adam_betas, adam_eps, max_grad_norm
        ``"adamw"`` or ``"sgd"``; gradient clipping by global norm (``None``: off).
    lr_schedule, warmup_steps, schedule_iterations
        ``"constant"``, ``"linear"`` or ``"cosine"`` decay over ``schedule_iterations``
        iterations (counted in optimiser steps), after ``warmup_steps`` linear warm-up steps.
    source
        The :class:`ResponseSource` that builds each iteration's batch; by default
        :class:`MenuResponses` for a menu policy and :class:`SampledResponses` otherwise.
    logp_batch_size
        Rows per teacher-forced forward pass (``None``: all at once).
    output_dir
        Where ``trainer.json`` (hyper-parameters), ``metrics.csv``, ``reference/``,
        checkpoints and TensorBoard logs go (``None``: nothing written). ``metrics.csv`` (one
        row per iteration, SB3's CSV format) and the TensorBoard files are the outputs of the
        default logger; after :meth:`set_logger` the metrics go to that logger instead.
    save_every, keep_checkpoints
        Checkpoint every ``save_every`` iterations, keeping the newest ``keep_checkpoints``.
    resume_from
        A checkpoint folder, or an ``output_dir`` (its latest checkpoint): the policy's
        weights, snapshots, optimiser, scheduler, RNG states, counter, algorithm state
        and history are restored from it (the policy passed in is overwritten).
    evaluator, eval_every
        ``evaluator(trainer) -> dict`` of floats, logged after every ``eval_every``
        iterations (e.g. :func:`prefgym.evaluation.menu_evaluator`).
    lora
        ``None`` (train every weight) or :class:`peft.LoraConfig` keyword arguments: the
        policy's model is wrapped in place by :func:`apply_lora` and only the adapter
        weights train. Checkpoints then hold the adapters (``save_pretrained`` of the peft
        model; snapshots likewise), and resuming loads them onto the base model of the
        policy passed in, which must be the same base model as in the first run.
    tensorboard
        The default logger also writes ``output_dir/tensorboard`` (warns if the
        ``tensorboard`` package is missing).
    accelerator
        ``None``, ``True`` (create an ``accelerate.Accelerator``) or an accelerator (module docs).
    seed
        Seeds every random draw (``None``: drawn once from the OS and stored).
    **kwargs
        The settings above (fields of :class:`~prefgym.agents.llm.config.SelfPlayConfig`)
        unless ``config`` is given, and the algorithm's hyper-parameters when ``algorithm``
        is a name (or the subclass fixes it).

    Attributes
    ----------
    config
        The :class:`~prefgym.agents.llm.config.SelfPlayConfig` the trainer runs with (with the
        seed it drew when ``seed`` was None).
    history
        One dict of metrics per iteration.
    algorithm
        The :class:`~prefgym.agents.llm.algorithms.SelfPlayAlgorithm`.
    source
        The :class:`ResponseSource`.
    """

    name: ClassVar[str] = "self_play"
    algorithm_class: ClassVar[type[SelfPlayAlgorithm] | None] = None

    def __init__(
        self,
        policy,
        judge,
        prompts: Sequence[str],
        algorithm: str | SelfPlayAlgorithm | None = None,
        *,
        config: SelfPlayConfig | None = None,
        evaluator: Callable[[SelfPlayTrainer], dict[str, float]] | None = None,
        source: ResponseSource | None = None,
        accelerator=None,
        **kwargs,
    ):
        config, algorithm_kwargs = _split_config(config, kwargs)
        seed = config.seed
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
            config = dataclasses.replace(config, seed=seed)
        super().__init__(seed=int(seed), verbose=config.verbose)
        self.algorithm = self._make_algorithm(algorithm, algorithm_kwargs)
        self.prompts = _checked_prompts(prompts, source)
        _check_judge(judge, source)
        self.policy, self.judge = policy, judge
        self.is_menu = isinstance(policy, MenuPolicy)
        self.lm = policy.policy if self.is_menu else policy
        if self.algorithm.needs_reference() and self.lm.reference_model is None:
            raise ValueError(f"{self.algorithm.name} needs a reference model: build the policy with one "
                             "(e.g. LMPolicy.from_pretrained(path, reference='copy'))")
        if config.exact is not None and not self.is_menu:
            raise ValueError("exact= applies to MenuPolicy only (an LMPolicy's responses are sampled)")
        #: the trainer's settings (:class:`~prefgym.agents.llm.config.SelfPlayConfig`; the seed drawn if None)
        self.config = config
        self.exact = (True if config.exact is None else config.exact) if self.is_menu else False
        self.num_samples = config.num_samples
        self._set_iteration_schedule(config)
        self.learning_rate, self.optimizer_name = config.learning_rate, config.optimizer
        self.weight_decay, self.adam_eps = config.weight_decay, config.adam_eps
        self.adam_betas = tuple(config.adam_betas)
        self.max_grad_norm = config.max_grad_norm
        self.lr_schedule, self.warmup_steps = config.lr_schedule, config.warmup_steps
        self.schedule_iterations = config.schedule_iterations
        self.logp_batch_size = config.logp_batch_size
        #: responses teacher-forced with grad by the optimiser steps so far (only those the loss reads)
        self.scored_sequences = 0
        self.output_dir = None if config.output_dir is None else Path(config.output_dir)
        self.save_every = config.save_every
        self.keep_checkpoints = max(1, config.keep_checkpoints)
        self.evaluator, self.eval_every = evaluator, max(1, config.eval_every)
        self.tensorboard = config.tensorboard
        self.history: list[dict[str, float]] = []
        #: per iteration of this process, ``{"wall": {phase: s}, "cpu": {phase: s}}`` (generation, judging,
        #: logprobs (no-grad teacher forcing), forward, backward, optimizer, other); not checkpointed
        self.phase_times: list[dict[str, dict[str, float]]] = []
        self.initial_metrics: dict[str, float] = {}

        self.accelerator = make_accelerator(accelerator, self.lm.device)
        self.rank = self.accelerator.process_index if self.accelerator is not None else 0
        self.world_size = self.accelerator.num_processes if self.accelerator is not None else 1
        self.is_main_process = self.rank == 0

        self.lora = None if config.lora is None else dict(config.lora)
        if self.lora is not None:
            self._apply_lora()
        self.lm.model.eval()  # dropout off; LMPolicy.generate restores the mode it finds
        self.source: ResponseSource = self._make_source(source, self.logp_batch_size)
        self._snapshots: dict[str, Any] = {}
        # with LoRA a snapshot differs from the policy in its adapters only: it shares the frozen base weights
        shared = {id(p): p for p in self.lm.model.parameters() if not p.requires_grad} if self.lora else {}
        for name in self.algorithm.snapshots:
            frozen = copy.deepcopy(self.lm.model, memo=dict(shared)).requires_grad_(False).eval()
            self._snapshots[name] = policy_view(self.lm, frozen)
        self.params = [p for p in self.lm.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, self.optimizer_name, self.learning_rate, self.adam_betas,
                                        self.adam_eps, self.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, self.lr_schedule, self.warmup_steps,
                                        None if self.schedule_iterations is None
                                        else self.schedule_iterations * self.steps_per_iteration)
        self.resumed_from: Path | None = None
        if config.resume_from is not None:
            self._restore(Path(config.resume_from))

    # ------------------------------------------------------------------ construction
    def _set_iteration_schedule(self, config: SelfPlayConfig) -> None:
        """Prompts and optimiser steps per iteration; ``step_kl_tol`` (an exact menu only) ends an
        iteration's steps early, at most ``max_steps_per_iteration`` of them (the config checked
        the values; what needs the prompts and the policy is checked here)."""
        k = config.prompts_per_iteration
        if k is not None and not k <= len(self.prompts):
            raise InvalidArgumentError(f"prompts_per_iteration must be in [1, {len(self.prompts)}] (at most "
                                       f"the prompts); got {k}")
        if config.step_kl_tol is not None and not (self.is_menu and self.exact):
            raise ValueError("step_kl_tol needs an enumerated menu (MenuPolicy, exact=True): the exact step "
                             "is known only there")
        self.prompts_per_iteration, self.steps_per_iteration = k, config.steps_per_iteration
        self.step_kl_tol, self.max_steps_per_iteration = config.step_kl_tol, config.max_steps_per_iteration

    def _apply_lora(self) -> None:
        """Wrap the model in LoRA adapters, initialised from ``seed`` alike on every process."""
        init = np.random.SeedSequence([int(self.seed), zlib.crc32(b"lora_init")]).generate_state(1)[0]
        with torch.random.fork_rng(devices=[self.lm.device] if self.lm.device.type == "cuda" else []):
            torch.manual_seed(int(init))
            self.lm.model = apply_lora(self.lm.model, self.lora)

    def _make_source(self, source, logp_batch_size: int | None) -> ResponseSource:
        """The given source, else a menu's (exact or sampled) or sampled replies of the policy."""
        if source is not None:  # e.g. a per-state multi-turn source (prefgym.agents.llm.multiturn)
            if not isinstance(source, ResponseSource):
                raise TypeError(f"source must be a ResponseSource; got {type(source).__name__}")
            return source
        if self.is_menu:
            return MenuResponses(self.policy, self.judge, exact=self.exact, num_samples=self.num_samples)
        return SampledResponses(self.policy, self.judge, self.num_samples, batch_size=logp_batch_size)

    def _make_algorithm(self, algorithm, kwargs) -> SelfPlayAlgorithm:
        cls = type(self).algorithm_class
        if cls is not None:
            if algorithm is not None:
                raise TypeError(f"{type(self).__name__} fixes the algorithm to {cls.name!r}; pass its "
                                "hyper-parameters as keyword arguments instead")
            return self._build_algorithm(cls, kwargs)
        if isinstance(algorithm, SelfPlayAlgorithm):
            if kwargs:
                raise TypeError(f"unexpected keyword arguments {sorted(kwargs)} with an algorithm instance")
            return algorithm
        if not isinstance(algorithm, str):
            raise TypeError("algorithm must be a name in ALGORITHMS or a SelfPlayAlgorithm")
        from prefgym.agents.llm.registry import ALGORITHMS  # built from the specs, above this module
        from prefgym.algorithms import get_spec

        key = get_spec(algorithm).name
        if key not in ALGORITHMS:
            raise ValueError(f"{algorithm!r} has no language-model form; choose from {sorted(ALGORITHMS)}")
        return self._build_algorithm(ALGORITHMS[key], kwargs)

    @staticmethod
    def _build_algorithm(cls, kwargs) -> SelfPlayAlgorithm:
        unknown = set(kwargs) - cls.field_names()
        if unknown:
            raise TypeError(f"unknown arguments {sorted(unknown)}; {cls.name} takes "
                            f"{sorted(cls.field_names())} besides the trainer's")
        return cls(**kwargs)

    # ------------------------------------------------------------------ helpers for algorithms
    @property
    def device(self) -> torch.device:
        return self.lm.device

    def iteration_seed(self, iteration: int, purpose: str) -> int:
        """A seed for one random draw of an iteration, from ``(seed, iteration, purpose, rank)``."""
        ss = np.random.SeedSequence([int(self.seed), int(iteration), zlib.crc32(purpose.encode()), self.rank])
        return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))

    def snapshot(self, name: str):
        """The frozen copy ``name`` of the policy (an LMPolicy view)."""
        return self._snapshots[name]

    def refresh_snapshot(self, name: str) -> None:
        """Copy the current weights into snapshot ``name``."""
        with torch.no_grad():
            self._snapshots[name].model.load_state_dict(self.lm.model.state_dict())

    # ------------------------------------------------------------------ the loop
    def _select_prompts(self, iteration: int) -> list[str]:
        if self.prompts_per_iteration is None:
            chosen = self.prompts
        else:
            rng = np.random.default_rng(self.iteration_seed(iteration, "prompts") % 2**32)
            idx = rng.choice(len(self.prompts), size=self.prompts_per_iteration, replace=False)
            chosen = [self.prompts[i] for i in idx]
        if self.world_size > 1:
            chosen = chosen[self.rank::self.world_size]
            if not chosen:
                raise ValueError(f"{self.world_size} processes but only {len(self.prompts)} prompts per "
                                 "iteration: every process needs at least one")
        return chosen

    def _setup_learn(self, total_iterations: int) -> None:
        if self.output_dir is not None and self.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.output_dir / CONFIG_FILE, "w") as fh:  # the run's hyper-parameters
                json.dump(self._config(), fh, indent=2, default=json_default)
            if self.lm.reference_model is not None and not (self.output_dir / "reference").exists():
                with _quiet(), staged_output_dir(self.output_dir / "reference") as stage:
                    self.lm.reference_model.save_pretrained(stage)
        if self.evaluator is not None and self.num_iterations == 0 and not self.initial_metrics:
            self.initial_metrics = {k: float(v) for k, v in self.evaluator(self).items()}

    def _iterate(self, index: int) -> None:
        t = self.num_iterations
        start = time.perf_counter()
        times = PhaseTimes(self.device)
        self.source.phase_times = times
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), times.phase("other"):
            torch.manual_seed(self.iteration_seed(t, "torch"))
            batch = self.source.collect(self._select_prompts(t), seed=self.iteration_seed(t, "sample"))
            self.algorithm.prepare(self, batch, t)
            _batch_to(batch, self.device)
            losses, grad_norm, out = self._optimise(batch, t, times)
            step_kl = self._step_kl(batch)
            self.algorithm.end_iteration(self, t)
        self.source.phase_times = None
        self.phase_times.append(times.as_dict())
        row = self._metrics_row(t, batch, losses, grad_norm, out.metrics if out else {}, step_kl)
        if self.step_kl_tol is not None:
            row["inner_steps"] = len(losses)
        row["time_s"] = time.perf_counter() - start
        if self.evaluator is not None and (t + 1) % self.eval_every == 0:
            row.update({k: float(v) for k, v in self.evaluator(self).items()})
        self.history.append(row)
        if self.output_dir is not None and self.save_every and (t + 1) % self.save_every == 0:
            self._checkpoint(t + 1)

    def _optimise(self, batch: SelfPlayBatch, t: int, times: PhaseTimes) -> tuple[list[float], float, Any]:
        """The iteration's optimiser steps on the algorithm's loss: ``steps_per_iteration`` of them, or
        with ``step_kl_tol`` until the exact step is realised (at most ``max_steps_per_iteration``).
        Returns the losses, the last gradient norm (NaN without clipping) and the last loss output."""
        scored = self.algorithm.scored_responses(batch)  # None: the loss reads every response
        per_step = int(scored.sum()) if scored is not None else batch.old_logp.numel()
        losses, grad_norm, out = [], float("nan"), None
        target = self._exact_target(batch) if self.step_kl_tol is not None else None
        cap = self.steps_per_iteration if target is None else (
            self.max_steps_per_iteration or 16 * self.steps_per_iteration)
        for k in range(cap):
            self.optimizer.zero_grad(set_to_none=True)
            with times.phase("forward"):
                logp = self.source.logp(batch, requires_grad=True, mask=scored)
            self.scored_sequences += per_step
            if target is not None and k >= self.steps_per_iteration and self._realised(target, logp):
                break  # subproblem solved to step_kl_tol (see the class docstring)
            with times.phase("forward"):
                out = self.algorithm.loss(self, batch, logp, t)
            with times.phase("backward"):
                if self.accelerator is not None:
                    self.accelerator.backward(out.loss)
                else:
                    out.loss.backward()
                self._all_reduce_grads()
            with times.phase("optimizer"):
                if self.max_grad_norm is not None:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm))
                self.optimizer.step()
                self.scheduler.step()
            losses.append(float(out.loss.detach()))
        return losses, grad_norm, out

    def _exact_target(self, batch: SelfPlayBatch) -> Tensor | None:
        """Normalised log-policy of the algorithm's exact step on an enumerated menu, or ``None``."""
        target = self.algorithm.exact_step(batch) if batch.exact else None
        return None if target is None else torch.log_softmax(target.detach().float(), dim=-1)

    def _realised(self, target: Tensor, logp: Tensor) -> bool:
        """Whether ``KL(exact step || pi_theta) <= step_kl_tol`` (mean over states and processes)."""
        kl = _menu_kl(target, logp).mean()
        if self.world_size > 1:  # every process takes the same decision
            kl = self.accelerator.reduce(kl, reduction="mean")
        return float(kl) <= self.step_kl_tol

    def _step_kl(self, batch: SelfPlayBatch) -> float | None:
        """``KL(exact rule step || pi_{t+1})`` on an enumerated menu, mean over the batch's states."""
        if not batch.exact:
            return None
        target = self.algorithm.exact_step(batch)
        if target is None:
            return None
        with torch.no_grad():
            new = self.source.logp(batch).to(self.device)
            return float(_menu_kl(torch.log_softmax(target.float(), dim=-1), new).mean())

    def _all_reduce_grads(self) -> None:
        all_reduce_grads(self.params, self.accelerator, self.world_size)

    def _finish_learn(self, done: int) -> None:
        pass

    def get_parameters(self) -> dict[str, Any]:
        """SB3's layout: ``{"policy": model state dict, "optimizer": optimiser state dict}`` (copies)."""
        return {"policy": {k: v.detach().clone() for k, v in self.lm.model.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def set_parameters(self, load_path_or_dict, exact_match: bool = True, device: str = "auto") -> None:
        """Load :meth:`get_parameters`' dict (``exact_match``: every key, and strict state dicts)."""
        from prefgym.errors import InvalidArgumentError, InvalidTypeError

        if not isinstance(load_path_or_dict, dict):
            raise InvalidTypeError("set_parameters takes the dict of get_parameters(); got "
                                   f"{type(load_path_or_dict).__name__}")
        unknown = sorted(set(load_path_or_dict) - {"policy", "optimizer"})
        if unknown:
            raise InvalidArgumentError(f"unknown parameters {unknown}; the trainer has "
                                       "['optimizer', 'policy']")
        if exact_match and set(load_path_or_dict) != {"policy", "optimizer"}:
            raise InvalidArgumentError("exact_match=True needs both 'policy' and 'optimizer'; got "
                                       f"{sorted(load_path_or_dict)}")
        if "policy" in load_path_or_dict:
            self.lm.model.load_state_dict(load_path_or_dict["policy"], strict=exact_match)
        if "optimizer" in load_path_or_dict:
            self.optimizer.load_state_dict(load_path_or_dict["optimizer"])

    def set_random_seed(self, seed: int | None = None) -> None:
        """Re-seed: every later draw of iteration ``t`` comes from ``(seed, t, purpose, rank)``."""
        super().set_random_seed(seed)
        self.config = dataclasses.replace(self.config, seed=self.seed)

    # ------------------------------------------------------------------ Agent API
    @classmethod
    def load(cls, path: str | Path, env=None, *, judge=None, policy=None,
             prompts: Sequence[str] | None = None, device: str | torch.device | None = None,
             **overrides) -> SelfPlayTrainer:
        """Rebuild a trainer from a folder written by :meth:`save` (or a checkpoint / ``output_dir``).

        Parameters
        ----------
        path
            The folder.
        env, judge
            The judge (``env`` is accepted positionally, as in :meth:`BaseAgent.load`).
        policy
            A policy to load the weights into; default: ``LMPolicy.from_pretrained`` of the
            saved ``policy/`` folder, with the saved ``reference/`` (in the folder or its
            parent) and sampling settings, wrapped in a :class:`MenuPolicy` if it was one.
        prompts
            Overrides the saved prompts.
        device
            Device of a newly built policy.
        **overrides
            Replace saved trainer hyper-parameters (e.g. ``output_dir``).
        """
        folder = cls.resolve_checkpoint(path)
        judge = judge if judge is not None else env
        if judge is None:
            raise ValueError("load needs the judge (judge=...)")
        cfg = cls._read_config(folder)
        klass = cls
        if cfg["class"] != cls.__name__:
            from prefgym.agents.llm.registry import LLM_AGENTS

            by_name = {c.__name__: c for c in (SelfPlayTrainer, *LLM_AGENTS.values())}
            if cls is not SelfPlayTrainer or cfg["class"] not in by_name:
                raise ValueError(f"{folder} holds a {cfg['class']} trainer, not a {cls.__name__}")
            klass = by_name[cfg["class"]]
        if policy is None:
            if cfg["hparams"].get("lora") is not None:
                raise ValueError(f"{folder} holds LoRA adapters only; pass the base policy (policy=...) "
                                 "they were trained on")
            policy = _build_policy(folder, cfg["policy"], device)
        hparams = {k: v for k, v in cfg["hparams"].items() if not (k == "exact" and v is None)}
        hparams["adam_betas"] = tuple(hparams["adam_betas"])
        hparams.update(overrides)
        algo_kw = dict(cfg["algorithm_hparams"])
        if klass.algorithm_class is None:
            hparams["algorithm"] = cfg["algorithm"]
        try:
            return klass(policy, judge, list(prompts) if prompts is not None else cfg["prompts"],
                         resume_from=folder, **hparams, **algo_kw)
        except AgentLoadError:
            raise
        except (InvalidArgumentError, InvalidTypeError) as exc:  # a saved argument the constructor refuses
            raise AgentLoadError(f"{folder}: cannot rebuild {klass.__name__} from its saved hyper-parameters "
                                 f"({type(exc).__name__}: {exc})") from None
        except PrefgymError:
            raise
        except (TypeError, ValueError) as exc:
            raise AgentLoadError(f"{folder}: cannot rebuild {klass.__name__} from its saved hyper-parameters "
                                 f"({type(exc).__name__}: {exc})") from None

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """Reply to a prompt (or a list of prompts): ``(replies, None)``, as SB3's ``predict``."""
        single = isinstance(observation, str)
        prompts = [observation] if single else list(observation)
        seed = None if deterministic else int(self.rng.integers(0, 2**63 - 1))
        texts = self.source.predict(prompts, deterministic, seed)
        return (texts[0] if single else texts), state

    def evaluate(self) -> dict[str, float]:
        """Run the evaluator now."""
        if self.evaluator is None:
            raise ValueError("no evaluator was given")
        return {k: float(v) for k, v in self.evaluator(self).items()}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(algorithm={self.algorithm!r}, prompts={len(self.prompts)}, "
                f"iterations={self.num_iterations}, exact={self.exact})")


def _menu_kl(target: Tensor, logp: Tensor) -> Tensor:
    """``KL(p || q)`` per row of normalised (B, N) log-probs, in float64 and as ``sum p (d + e^-d - 1)``.

    ``d = log p - log q``; equal to ``sum p d`` when both rows are normalised, but a sum of
    non-negative terms: no cancellation when the step is realised to ~1e-8 (float32
    log-probs put the plain sum's noise there, negative values included).
    """
    p_log, q_log = target.detach().double(), logp.detach().double()
    d = p_log - q_log
    return (p_log.exp() * (d + torch.expm1(-d))).sum(-1)


# ============================================================================ registry names


def __getattr__(name: str):
    """``LLM_AGENTS``, ``ALGORITHMS`` and the per-algorithm trainers (``OMWUTrainer``, ...) live in
    :mod:`prefgym.agents.llm.registry`, built from the specs."""
    if name.startswith("_") or not (name in ("LLM_AGENTS", "ALGORITHMS") or name.endswith("Trainer")):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from prefgym.agents.llm import registry

    try:
        return getattr(registry, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
