"""The settings of :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` as data (TRL's ``*Config`` split).

:class:`SelfPlayConfig` holds every trainer setting that is a plain value (numbers, strings,
paths, the LoRA arguments); the objects a trainer works on (policy, judge, prompts, a custom
response source, an evaluator, an accelerator) and the algorithm's hyper-parameters stay
arguments of the trainer. ``SelfPlayTrainer(policy, judge, prompts, config=SelfPlayConfig(...))``
and the keyword form ``SelfPlayTrainer(policy, judge, prompts, learning_rate=...)`` build the
same trainer; the trainer keeps the checked config as ``trainer.config`` (with the seed it
drew when ``seed=None``). :meth:`SelfPlayConfig.to_dict` / :meth:`SelfPlayConfig.from_dict`
round-trip through JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefgym.errors import InvalidArgumentError, InvalidTypeError
from prefgym.validation import (
    check_float,
    check_int,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_seed,
)

__all__ = ["SelfPlayConfig", "OPTIMIZERS", "LR_SCHEDULES"]

#: optimisers the trainer builds (``optimizer=``)
OPTIMIZERS = ("adamw", "adam", "sgd")
#: learning-rate schedules (``lr_schedule=``)
LR_SCHEDULES = ("constant", "linear", "cosine")


def _unless_none(check: Callable, value, name: str, **kwargs):
    """``check(value, name, **kwargs)``, or None for None."""
    return None if value is None else check(value, name, **kwargs)


def _checked_adam_betas(adam_betas) -> tuple[float, float]:
    if not isinstance(adam_betas, tuple | list) or len(adam_betas) != 2:
        raise InvalidArgumentError(f"adam_betas must be a pair (beta1, beta2); got {adam_betas!r:.60}")
    return tuple(check_float(b, f"adam_betas[{i}]", low=0.0, high=1.0, high_open=True)
                 for i, b in enumerate(adam_betas))


def _checked_choice(value, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name} must be a string, one of {list(allowed)}; got {value!r:.60}")
    if value.lower() not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {list(allowed)}; got {value!r:.60}")
    return value.lower()


@dataclass
class SelfPlayConfig:
    """Settings of the self-play loop (see :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer`).

    Every field is checked in ``__post_init__`` (:mod:`prefgym.errors` types, the message
    names the field, the value and what is allowed); checks that need the policy or the
    prompts (``exact`` needs a menu, ``prompts_per_iteration`` at most the prompts) are the
    trainer's.

    Parameters
    ----------
    num_samples
        ``K`` responses per prompt.
    exact
        Menu policies only: enumerate the menu (``None``: yes for a menu).
    prompts_per_iteration
        Prompts drawn per iteration (``None``: all, in order).
    steps_per_iteration, step_kl_tol, max_steps_per_iteration
        Optimiser steps per iteration; with ``step_kl_tol`` the iteration's subproblem is
        solved to a KL tolerance, at most ``max_steps_per_iteration`` steps.
    learning_rate, optimizer, weight_decay, adam_betas, adam_eps, max_grad_norm
        The optimiser (``"adamw"``, ``"adam"`` or ``"sgd"``) and gradient clipping (``None``: off).
    lr_schedule, warmup_steps, schedule_iterations
        ``"constant"``, ``"linear"`` or ``"cosine"`` decay over ``schedule_iterations``
        iterations after ``warmup_steps`` linear warm-up steps.
    logp_batch_size
        Rows per teacher-forced forward pass (``None``: all at once).
    output_dir, save_every, keep_checkpoints, resume_from
        Where the run is written, how often it is checkpointed, how many checkpoints are
        kept, and a checkpoint (or ``output_dir``) to resume from.
    eval_every
        Run the evaluator after every ``eval_every`` iterations.
    lora
        ``None`` or :class:`peft.LoraConfig` keyword arguments.
    tensorboard
        The default logger also writes ``output_dir/tensorboard``.
    seed
        Seeds every random draw (``None``: the trainer draws one and stores it).
    verbose
        ``1``: print the metrics of every iteration.
    """

    num_samples: int = 4
    exact: bool | None = None
    prompts_per_iteration: int | None = None
    steps_per_iteration: int = 4
    step_kl_tol: float | None = None
    max_steps_per_iteration: int | None = None
    learning_rate: float = 1e-4
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    schedule_iterations: int | None = None
    logp_batch_size: int | None = None
    output_dir: str | Path | None = None
    save_every: int | None = 1
    keep_checkpoints: int = 1
    resume_from: str | Path | None = None
    eval_every: int = 1
    lora: dict[str, Any] | None = field(default=None)
    tensorboard: bool = False
    seed: int | None = 0
    verbose: int = 0

    def __post_init__(self) -> None:
        self.num_samples = check_positive_int(self.num_samples, "num_samples")
        if self.exact is not None and not isinstance(self.exact, bool):
            raise InvalidTypeError(f"exact must be True, False or None; got {self.exact!r:.60}")
        self.prompts_per_iteration = _unless_none(check_int, self.prompts_per_iteration,
                                                  "prompts_per_iteration", minimum=1)
        self.steps_per_iteration = check_positive_int(self.steps_per_iteration, "steps_per_iteration")
        self.step_kl_tol = _unless_none(check_nonnegative_float, self.step_kl_tol, "step_kl_tol")
        self.max_steps_per_iteration = _unless_none(check_positive_int, self.max_steps_per_iteration,
                                                    "max_steps_per_iteration")
        if self.max_steps_per_iteration is not None:
            if self.step_kl_tol is None:
                raise InvalidArgumentError("max_steps_per_iteration applies with step_kl_tol (without it "
                                           "every iteration takes exactly steps_per_iteration steps)")
            if self.max_steps_per_iteration < self.steps_per_iteration:
                raise InvalidArgumentError(f"max_steps_per_iteration ({self.max_steps_per_iteration}) < "
                                           f"steps_per_iteration ({self.steps_per_iteration})")
        self.learning_rate = check_positive_float(self.learning_rate, "learning_rate")
        self.optimizer = _checked_choice(self.optimizer, "optimizer", OPTIMIZERS)
        self.weight_decay = check_nonnegative_float(self.weight_decay, "weight_decay")
        self.adam_betas = _checked_adam_betas(self.adam_betas)
        self.adam_eps = check_positive_float(self.adam_eps, "adam_eps")
        self.max_grad_norm = _unless_none(check_positive_float, self.max_grad_norm, "max_grad_norm")
        self.lr_schedule = _checked_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        self.warmup_steps = check_int(self.warmup_steps, "warmup_steps", minimum=0)
        self.schedule_iterations = _unless_none(check_positive_int, self.schedule_iterations,
                                                "schedule_iterations")
        if self.lr_schedule != "constant" and self.schedule_iterations is None:
            raise InvalidArgumentError(f"lr_schedule={self.lr_schedule!r} needs schedule_iterations "
                                       "(the planned total)")
        self.logp_batch_size = _unless_none(check_positive_int, self.logp_batch_size, "logp_batch_size")
        for name in ("output_dir", "resume_from"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | Path):
                raise InvalidTypeError(f"{name} must be a path (str or pathlib.Path) or None; got "
                                       f"{value!r:.60} ({type(value).__name__})")
        self.save_every = _unless_none(check_positive_int, self.save_every, "save_every")
        self.keep_checkpoints = check_int(self.keep_checkpoints, "keep_checkpoints", minimum=0)
        self.eval_every = check_int(self.eval_every, "eval_every", minimum=0)
        if self.lora is not None:
            if not isinstance(self.lora, Mapping):
                raise InvalidTypeError(f"lora must be None or a dict of peft.LoraConfig arguments; got "
                                       f"{self.lora!r:.60} ({type(self.lora).__name__})")
            self.lora = dict(self.lora)
        if not isinstance(self.tensorboard, bool):
            raise InvalidTypeError(f"tensorboard must be True or False; got {self.tensorboard!r:.60}")
        self.seed = _unless_none(check_seed, self.seed, "seed")
        self.verbose = check_int(self.verbose, "verbose", minimum=0)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the fields, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-safe values (paths as strings, ``adam_betas`` as a list)."""
        out = {name: getattr(self, name) for name in self.field_names()}
        out["adam_betas"] = list(self.adam_betas)
        for name in ("output_dir", "resume_from"):
            out[name] = None if out[name] is None else str(out[name])
        out["lora"] = None if self.lora is None else dict(self.lora)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SelfPlayConfig:
        """The config of :meth:`to_dict`'s dict (missing fields take their defaults).

        Raises
        ------
        InvalidArgumentError
            ``data`` has a key that is not a field.
        """
        if not isinstance(data, Mapping):
            raise InvalidTypeError(f"SelfPlayConfig.from_dict takes a dict; got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise InvalidArgumentError(f"unknown SelfPlayConfig fields {unknown}; the fields are "
                                       f"{list(cls.field_names())}")
        return cls(**data)
