"""Optimiser, learning-rate schedule and ``accelerate`` set-up of the self-play trainer.

:func:`make_optimizer` and :func:`make_scheduler` build what one :class:`SelfPlayTrainer`
steps; :func:`make_accelerator` checks an ``accelerate.Accelerator`` against the policy's
device, and :func:`all_reduce_grads` averages gradients over its processes (the
all-reduce DDP performs, without wrapping the model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["make_optimizer", "make_scheduler", "make_accelerator", "all_reduce_grads"]


def _lr_lambda(kind: str, warmup: int, total: int | None) -> Callable[[int], float]:
    if kind not in ("constant", "linear", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant', 'linear' or 'cosine'; got {kind!r}")
    if kind != "constant" and not total:
        raise ValueError(f"lr_schedule={kind!r} needs schedule_iterations (the planned total)")

    def fn(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - frac if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))

    return fn


def make_optimizer(params: Sequence[torch.nn.Parameter], name: str, learning_rate: float,
                   adam_betas: tuple[float, float], adam_eps: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """``"adamw"``, ``"adam"`` or ``"sgd"`` over ``params``."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=learning_rate, betas=adam_betas,
                                 eps=adam_eps, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, betas=adam_betas,
                                eps=adam_eps, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adamw', 'adam' or 'sgd'; got {name!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, warmup_steps: int,
                   total_steps: int | None) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then constant, linear or cosine decay to ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(kind, warmup_steps, total_steps))


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True  # "cpu" and "cpu:0" are the same device
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


def make_accelerator(accelerator, device: torch.device):
    """``None`` (off), a new ``accelerate.Accelerator`` for ``True``, or the given one, on ``device``."""
    if accelerator is None or accelerator is False:
        return None
    if accelerator is True:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=device.type == "cpu")
    if not _same_device(torch.device(accelerator.device), device):
        raise ValueError(f"the policy is on {device} but the accelerator on "
                         f"{accelerator.device}; build the policy with device=accelerator.device")
    return accelerator


def all_reduce_grads(params: Sequence[torch.nn.Parameter], accelerator, world_size: int) -> None:
    """Average the gradients of ``params`` over the processes (no-op for one process)."""
    if world_size <= 1:
        return
    for p in params:
        if p.grad is not None:
            p.grad.copy_(accelerator.reduce(p.grad, reduction="mean"))
