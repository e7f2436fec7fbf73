"""Checkpoints of the self-play trainer: write, find, read and restore them.

A checkpoint folder holds ``policy/`` (``save_pretrained``), ``snapshots/<name>/`` (frozen
previous iterate or magnet), ``trainer_state.pt`` (optimiser, scheduler, RNG states, iteration
counter, algorithm state, metrics history; read with ``torch.load(weights_only=True)``) and
``trainer.json`` (hyper-parameters, checked on reading: format, version, fields). An
``output_dir`` holds ``checkpoint-NNNNNN/`` folders and a ``latest`` pointer.
:class:`TrainerCheckpointing` is the part of
:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` that does this; the module functions
:func:`resolve_checkpoint`, :func:`read_config` and :func:`read_state` need no trainer.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefgym.agents.llm.model_io import _load_weights, _quiet
from prefgym.errors import AgentLoadError, PrefgymError
from prefgym.fileio import atomic_write, atomic_write_text, contained_path
from prefgym.serialization import json_default

__all__ = ["TrainerCheckpointing", "resolve_checkpoint", "read_config", "read_state", "STATE_FILE",
           "CONFIG_FILE", "LATEST_FILE", "TRAINER_FORMAT", "TRAINER_FORMAT_VERSION"]

STATE_FILE, CONFIG_FILE, LATEST_FILE = "trainer_state.pt", "trainer.json", "latest"
TRAINER_FORMAT, TRAINER_FORMAT_VERSION = "prefgym.selfplay_trainer", 1


class TrainerCheckpointing:
    """Checkpoint writing, reading and restoring of :class:`~prefgym.agents.llm.trainer.SelfPlayTrainer`.

    A mixin: it reads the trainer's attributes (``lm``, ``policy``, ``optimizer``,
    ``scheduler``, ``algorithm``, ``history``, ``output_dir``, ...).
    """

    def _config(self) -> dict[str, Any]:
        lm = self.lm
        return {
            "format": TRAINER_FORMAT, "format_version": TRAINER_FORMAT_VERSION,
            "class": type(self).__name__,
            "algorithm": self.algorithm.name,
            "algorithm_hparams": self.algorithm.hparams(),
            "hparams": self._get_hparams(),
            "config": self.config.to_dict(),  # every setting (SelfPlayConfig)
            "prompts": self.prompts,
            "policy": {"max_new_tokens": lm.max_new_tokens, "temperature": lm.temperature, "top_p": lm.top_p,
                       "top_k": lm.top_k, "stop_strings": list(lm.stop_strings),
                       "chat_template": getattr(lm, "chat_template", None),
                       "menu": ({"responses": self.policy.responses, "append_eos": self.policy.append_eos}
                                if self.is_menu else None)},
        }

    def _get_hparams(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples, "exact": self.exact if self.is_menu else None,
            "prompts_per_iteration": self.prompts_per_iteration,
            "steps_per_iteration": self.steps_per_iteration, "step_kl_tol": self.step_kl_tol,
            "max_steps_per_iteration": self.max_steps_per_iteration, "learning_rate": self.learning_rate,
            "optimizer": self.optimizer_name, "weight_decay": self.weight_decay,
            "adam_betas": list(self.adam_betas), "adam_eps": self.adam_eps,
            "max_grad_norm": self.max_grad_norm,
            "lr_schedule": self.lr_schedule, "warmup_steps": self.warmup_steps,
            "schedule_iterations": self.schedule_iterations, "logp_batch_size": self.logp_batch_size,
            "save_every": self.save_every, "keep_checkpoints": self.keep_checkpoints,
            "eval_every": self.eval_every, "lora": self.lora, "seed": self.seed,
        }

    def _get_state(self) -> dict[str, np.ndarray]:
        """Unused: the LM state lives in the checkpoint folder (see :meth:`save`)."""
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        """Unused: see :meth:`_restore`."""

    def _write_state(self, folder: Path, num_iterations: int, include_reference: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with _quiet():
            self.lm.save_pretrained(folder / "policy")
            for name, view in self._snapshots.items():
                view.model.save_pretrained(folder / "snapshots" / name)
            if include_reference and self.lm.reference_model is not None:
                self.lm.reference_model.save_pretrained(folder / "reference")
        state = {
            "num_iterations": int(num_iterations),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state, default=json_default),
            "python_rng": json.dumps(random.getstate()),
            "algorithm": json.dumps(self.algorithm.state_dict(), default=json_default),
            "history": json.dumps(self.history, default=json_default),
            "initial_metrics": json.dumps(self.initial_metrics, default=json_default),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        with atomic_write(folder / STATE_FILE, "wb") as fh:
            torch.save(state, fh)
        with atomic_write(folder / CONFIG_FILE, "w") as fh:
            json.dump({**self._config(), "num_iterations": int(num_iterations)}, fh, indent=2,
                      default=json_default)

    def checkpoint(self) -> Path:
        """Checkpoint the current iteration into ``output_dir`` unless its latest checkpoint already is it.

        The periodic checkpoints follow ``save_every``; call this at the end of a run whose
        length is not a multiple of it. Returns the checkpoint folder.
        """
        if self.output_dir is None:
            raise ValueError("checkpoint() needs an output_dir")
        try:
            latest = self.resolve_checkpoint(self.output_dir)
            with open(latest / CONFIG_FILE) as fh:
                done = int(json.load(fh)["num_iterations"])
        except (OSError, KeyError, ValueError, TypeError):
            done = -1
        if done != self.num_iterations:
            self._checkpoint(self.num_iterations)
        return self.resolve_checkpoint(self.output_dir)

    def _checkpoint(self, num_iterations: int) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
        if self.is_main_process:
            name = f"checkpoint-{num_iterations:06d}"
            final, tmp = self.output_dir / name, self.output_dir / (name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            self._write_state(tmp, num_iterations, include_reference=False)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            atomic_write_text(self.output_dir / LATEST_FILE, name)
            old = sorted(p for p in self.output_dir.glob("checkpoint-*") if p.is_dir() and p.suffix != ".tmp")
            for p in old[: max(0, len(old) - self.keep_checkpoints)]:
                shutil.rmtree(p, ignore_errors=True)
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    @staticmethod
    def resolve_checkpoint(path: str | Path) -> Path:
        """A checkpoint folder: ``path`` itself, or the latest checkpoint of an ``output_dir``.

        The ``latest`` pointer must name a checkpoint folder inside ``output_dir``.

        Raises
        ------
        FileNotFoundError
            ``path`` holds no checkpoint.
        AgentLoadError
            ``latest`` is unreadable, points outside the folder or to a missing checkpoint.
        """
        path = Path(path)
        if (path / STATE_FILE).exists():
            return path
        if (path / LATEST_FILE).exists():
            try:
                name = (path / LATEST_FILE).read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise AgentLoadError(f"{path / LATEST_FILE} is unreadable ({exc})") from None
            try:
                folder = contained_path(path, name)
            except ValueError:
                raise AgentLoadError(f"{path / LATEST_FILE} points to {name!r}, outside the run folder "
                                     f"{str(path)!r}; refusing to follow it") from None
            if not (folder / STATE_FILE).is_file():
                raise AgentLoadError(f"{path / LATEST_FILE} points to {name!r}, which holds no {STATE_FILE}")
            return folder
        raise FileNotFoundError(f"{path} holds no trainer checkpoint ({STATE_FILE} or {LATEST_FILE})")

    @staticmethod
    def _read_config(folder: Path) -> dict[str, Any]:
        """The checkpoint's ``trainer.json``, checked (format, version, fields)."""
        from prefgym.sb3_files import check_format

        where = str(folder / CONFIG_FILE)
        try:
            with open(folder / CONFIG_FILE) as fh:
                cfg = json.load(fh)
        except FileNotFoundError:
            raise AgentLoadError(f"{folder} holds no {CONFIG_FILE}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AgentLoadError(f"{where} is unreadable (empty, truncated or corrupted: {exc})") from None
        check_format(cfg, TRAINER_FORMAT, TRAINER_FORMAT_VERSION, where)
        for key, kind in (("class", str), ("algorithm", str), ("hparams", dict), ("algorithm_hparams", dict),
                          ("prompts", list), ("policy", dict)):
            if not isinstance(cfg.get(key), kind):
                raise AgentLoadError(f"{where}: field {key!r} must be a {kind.__name__}; "
                                     f"got {cfg.get(key)!r:.80}")
        return cfg

    @staticmethod
    def _read_state(folder: Path) -> dict[str, Any]:
        """``trainer_state.pt`` (``torch.load(weights_only=True)``: tensors and plain data only)."""
        where = str(folder / STATE_FILE)
        try:
            state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise AgentLoadError(f"{folder} holds no {STATE_FILE}") from None
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            msg = " ".join(str(exc).split())[:200]
            raise AgentLoadError(f"{where} cannot be read (empty, truncated, corrupted or holding objects "
                                 f"other than tensors and plain data: {type(exc).__name__}: {msg})") from None
        needed = ("num_iterations", "optimizer", "scheduler", "torch_rng", "numpy_rng", "python_rng",
                  "algorithm", "history", "initial_metrics")
        missing = [k for k in needed if not isinstance(state, dict) or k not in state]
        if missing:
            raise AgentLoadError(f"{where} lacks {missing[:3]}")
        return state

    def _restore(self, path: Path) -> None:
        folder = self.resolve_checkpoint(path)
        cfg = self._read_config(folder)
        if cfg["algorithm"] != self.algorithm.name:
            raise AgentLoadError(f"{folder} was written by {cfg['algorithm']!r}, not {self.algorithm.name!r}")
        state = self._read_state(folder)
        try:
            self._restore_from(folder, state)
        except PrefgymError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError, OSError) as exc:
            msg = " ".join(str(exc).split())[:300]
            raise AgentLoadError(f"checkpoint {str(folder)!r} does not fit this trainer or is corrupted "
                                 f"({type(exc).__name__}: {msg})") from None

    def _restore_from(self, folder: Path, state: dict[str, Any]) -> None:
        _load_weights(self.lm.model, folder / "policy")
        for name, view in self._snapshots.items():
            if not (folder / "snapshots" / name).is_dir():
                raise ValueError(f"{folder} holds no snapshot {name!r}: it was written with other "
                                 f"settings of {self.algorithm.name!r} (snapshots {sorted(self._snapshots)} "
                                 "needed here); resume with the settings of the run")
            _load_weights(view.model, folder / "snapshots" / name)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        py = json.loads(state["python_rng"])
        random.setstate((py[0], tuple(py[1]), py[2]))
        self.algorithm.load_state_dict(json.loads(state["algorithm"]))
        self.history = json.loads(state["history"])
        self.initial_metrics = json.loads(state["initial_metrics"])
        self.num_iterations = int(state["num_iterations"])
        self.resumed_from = folder


    def save(self, path: str | Path) -> Path:
        """Write a self-contained checkpoint folder (policy, reference, snapshots, states); returns it."""
        path = Path(path)
        if self.is_main_process:
            self._write_state(path, self.num_iterations, include_reference=True)
        return path


#: a checkpoint folder: ``path`` itself, or the latest checkpoint of an ``output_dir``
resolve_checkpoint = TrainerCheckpointing.resolve_checkpoint
#: a checkpoint's ``trainer.json``, checked
read_config = TrainerCheckpointing._read_config
#: a checkpoint's ``trainer_state.pt`` (tensors and plain data only)
read_state = TrainerCheckpointing._read_state
