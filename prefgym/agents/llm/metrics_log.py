"""Metrics and logging of the self-play trainer.

:class:`TrainerLogging` is the part of :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer`
that turns an iteration into one row of metrics (losses, gradient norm, learning rate, the
algorithm's metrics, entropy and KL estimates; averaged over processes) and sets up the
default logger: SB3's CSV format in ``output_dir/metrics.csv`` and, optionally, TensorBoard.
"""

from __future__ import annotations

import sys
import warnings
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

__all__ = ["TrainerLogging"]


class TrainerLogging:
    """Metrics rows and the default logger of :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer`.

    A mixin: it reads the trainer's ``history``, ``scheduler``, ``output_dir``, ``tensorboard``,
    ``verbose``, ``accelerator`` and the logger state of :class:`~prefgym.agents.base.BaseAgent`.
    """

    def _metrics_row(self, t, batch, losses, grad_norm, metrics, step_kl) -> dict[str, float]:
        """One row of ``history``: iteration ``t``'s losses, gradient norm, learning rate, the
        algorithm's metrics, entropy, KL estimates and ``step_kl`` (averaged over processes)."""
        w = batch.weights
        mean = (lambda x: (w * x).sum(-1).mean()) if w is not None else (lambda x: x.mean())
        row: dict[str, float] = {"iteration": t + 1, "loss_first": losses[0], "loss": losses[-1],
                                 "grad_norm": grad_norm, "lr": float(self.scheduler.get_last_lr()[0])}
        for k, v in metrics.items():
            row[k] = float(v.detach().float().mean()) if isinstance(v, Tensor) else float(v)
        old = batch.old_logp.float()
        row["entropy"] = float(-mean(old))  # H(pi_t) over the menu, or -E log pi_t(y) on samples
        if batch.ref_logp is not None:
            row["kl_reference"] = float(mean(old - batch.ref_logp.float()))  # KL(pi_t || pi_ref) estimate
        if "lengths" in batch.extra:
            row["response_tokens"] = float(batch.extra["lengths"].mean())
        if step_kl is not None:
            row["step_kl"] = step_kl
        if self.world_size > 1:  # every process has the same keys in the same order
            keys = list(row)
            vals = self.accelerator.reduce(torch.tensor([row[k] for k in keys], device=self.device,
                                                        dtype=torch.float64), reduction="mean")
            row = dict(zip(keys, vals.tolist(), strict=True))
            row["iteration"] = t + 1
        return row

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """``history`` as arrays, one per metric (NaN where an iteration lacks it)."""
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        return {k: np.array([row.get(k, np.nan) for row in self.history], dtype=float) for k in keys}

    default_log_interval: ClassVar[int] = 1

    def _step_info(self, index: int) -> dict[str, float]:
        """The metrics row of the iteration just made (``history[-1]``)."""
        return self.history[-1]

    def _setup_logger_and_counter(self, total: int, reset_num_timesteps: bool,
                                  tb_log_name: str | None) -> None:
        """The default logger writes ``output_dir/metrics.csv`` (SB3's CSV format) and, with
        ``tensorboard``, ``output_dir/tensorboard``; the CSV starts with the rows of ``history``
        (so a resumed run's file holds every iteration)."""
        if self._custom_logger or self.output_dir is None or not self.is_main_process:
            if not self._custom_logger and not self.is_main_process:
                from prefgym.logger import Logger

                self._logger = Logger(None, [])
                self._custom_logger = True  # other processes never log
            super()._setup_logger_and_counter(total, reset_num_timesteps, tb_log_name)
            return
        from prefgym.errors import MissingExtraError
        from prefgym.logger import CSVOutputFormat, HumanOutputFormat, Logger, TensorBoardOutputFormat

        if reset_num_timesteps:
            self.num_timesteps = 0
        self._total_timesteps = total + self.num_timesteps
        if self._logger is not None:
            self._logger.close()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        csv_out = CSVOutputFormat(self.output_dir / "metrics.csv")
        for row in self.history:
            csv_out.write(row, {}, int(row["iteration"]))
        formats = [csv_out]
        if self.tensorboard:
            try:
                formats.append(TensorBoardOutputFormat(self.output_dir / "tensorboard"))
            except MissingExtraError:
                warnings.warn("tensorboard=True but the tensorboard package is not installed; "
                              "logging to metrics.csv only", stacklevel=3)
                self.tensorboard = False
        if self.verbose >= 1:
            formats.append(HumanOutputFormat(sys.stdout))
        self._logger = Logger(self.output_dir, formats)
