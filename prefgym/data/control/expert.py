"""The SAC expert of 004 (App. A.2.1): train it on the true reward and list its checkpoints.

:func:`train_expert` writes ``<out>/checkpoints/sac_<steps>_steps.zip``,
``<out>/final.zip`` and a manifest ``<out>/expert.json`` naming the env (all without
pickle); :func:`list_checkpoints` reads such a run folder back in training order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefgym.errors import DatasetError, InvalidArgumentError
from prefgym.serialization import json_default
from prefgym.validation import check_int, check_seed

__all__ = ["ExpertRun", "list_checkpoints", "train_expert"]

_CHECKPOINT_RE = re.compile(r"_(\d+)_steps\.zip$")


@dataclass
class ExpertRun:
    """What :func:`train_expert` made: the model, its checkpoints ``[(steps, path)]`` and the final zip."""

    model: Any
    env_id: str
    checkpoints: list[tuple[int, Path]]
    final_path: Path
    out_dir: Path


def train_expert(
    env_id: str,
    total_timesteps: int,
    out_dir: str | Path,
    n_checkpoints: int = 10,
    sac_kwargs: dict | None = None,
    seed: int = 0,
    env_kwargs: dict | None = None,
    callback=None,
    progress_bar: bool = False,
    verbose: int = 0,
    overwrite: bool = False,
) -> ExpertRun:
    """Train an SB3 SAC expert on the true reward, saving ``n_checkpoints`` checkpoints.

    Parameters
    ----------
    sac_kwargs
        SAC constructor arguments (SB3 defaults otherwise: (256, 256) nets, lr 3e-4).
    callback
        Extra SB3 callback(s).

    overwrite
        Replace a non-empty ``out_dir`` (otherwise :class:`~prefgym.errors.OutputExistsError`).

    Writes ``<out_dir>/checkpoints/sac_<steps>_steps.zip``, ``<out_dir>/final.zip``
    (:func:`prefgym.sb3_files.save_sb3_model`: JSON and safetensors, no pickle) and
    ``<out_dir>/expert.json`` (env id, budget, SAC arguments). The run is written into a
    hidden staging folder beside ``out_dir`` and moved into place when it ends, so a
    killed run leaves ``out_dir`` as it was.

    Raises
    ------
    InvalidArgumentError
        If ``total_timesteps`` or ``n_checkpoints`` is not a positive integer, or
        there are more checkpoints than timesteps (nothing is written then).
    """
    total_timesteps = check_int(total_timesteps, "total_timesteps", minimum=1)
    n_checkpoints = check_int(n_checkpoints, "n_checkpoints", minimum=1)
    if n_checkpoints > total_timesteps:
        raise InvalidArgumentError(f"n_checkpoints = {n_checkpoints} exceeds total_timesteps = "
                                   f"{total_timesteps}; each checkpoint needs at least one step")
    seed = check_seed(seed)
    import gymnasium
    from stable_baselines3 import SAC

    from prefgym.fileio import atomic_write_text, staged_output_dir
    from prefgym.sb3_files import save_sb3_model

    out = Path(out_dir)
    env = gymnasium.make(env_id, **(env_kwargs or {}))
    model = SAC("MlpPolicy", env, seed=seed, verbose=verbose, **(sac_kwargs or {}))
    every = max(int(total_timesteps) // max(int(n_checkpoints), 1), 1)
    with staged_output_dir(out, overwrite=overwrite) as stage:
        ckpt_dir = stage / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        callbacks = [_SafeCheckpointCallback(every, ckpt_dir, env_id)]
        if callback is not None:
            callbacks += list(callback) if isinstance(callback, (list, tuple)) else [callback]
        model.learn(int(total_timesteps), callback=callbacks, progress_bar=progress_bar)
        save_sb3_model(model, stage / "final.zip", env_id=env_id)
        manifest = {"format": "prefgym.expert", "format_version": 1, "env_id": env_id,
                    "env_kwargs": env_kwargs or {}, "total_timesteps": int(total_timesteps),
                    "seed": seed, "sac_kwargs": sac_kwargs or {}, "final": "final.zip"}
        atomic_write_text(stage / "expert.json", json.dumps(manifest, indent=2, default=json_default))
    env.close()
    return ExpertRun(model, env_id, list_checkpoints(out, env_id), out / "final.zip", out)


def _SafeCheckpointCallback(every: int, folder: Path, env_id: str):
    """SB3's ``CheckpointCallback`` naming (``sac_<steps>_steps.zip``), saved by ``save_sb3_model``."""
    from stable_baselines3.common.callbacks import BaseCallback

    from prefgym.sb3_files import save_sb3_model

    class SafeCheckpointCallback(BaseCallback):
        def _on_step(self) -> bool:
            if self.n_calls % every == 0:
                save_sb3_model(self.model, folder / f"sac_{self.num_timesteps}_steps.zip", env_id=env_id)
            return True

    return SafeCheckpointCallback()


def list_checkpoints(out_dir: str | Path, env_id: str | None = None,
                     include_final: bool = True) -> list[tuple[int, Path]]:
    """The checkpoints ``[(steps, path)]`` of an expert run, sorted by steps.

    Raises
    ------
    DatasetError
        If the folder holds no checkpoint, or its ``expert.json`` names another env.
    """
    out = Path(out_dir)
    manifest = out / "expert.json"
    info = _read_manifest(manifest) if manifest.exists() else {}
    if env_id is not None and manifest.exists():
        recorded = info.get("env_id")
        if recorded != env_id:
            raise DatasetError(f"expert run {str(out)!r} was trained on {recorded!r}, not {env_id!r}")
    found = []
    for p in (out / "checkpoints").glob("*_steps.zip") if (out / "checkpoints").is_dir() else []:
        m = _CHECKPOINT_RE.search(p.name)
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    if include_final and (out / "final.zip").exists():
        total = info.get("total_timesteps", 0)
        if isinstance(total, bool) or not isinstance(total, int):
            raise DatasetError(f"{str(manifest)!r}: total_timesteps must be an integer; got {total!r}")
        if not found or found[-1][0] < total:
            found.append((int(total), out / "final.zip"))
    if not found:
        raise DatasetError(f"no SAC checkpoints in {str(out)!r}; make them with "
                           f"`prefgym data expert --env ENV --out {out}`")
    return found


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"expert manifest {str(path)!r} is unreadable ({exc})") from None
    if not isinstance(info, dict):
        raise DatasetError(f"expert manifest {str(path)!r} must hold a JSON object")
    from prefgym.sb3_files import check_format

    try:
        check_format(info, "prefgym.expert", 1, str(path))
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    return info
