"""Load time of the safe loaders (JSON + safetensors) vs the old pickle-based ones, side by side.

Run from the repository root::

    python benchmarks/safe_loaders.py                  # Hopper-v5, 15 rounds
    python benchmarks/safe_loaders.py --env InvertedPendulum-v5 --rounds 30

Two files, each saved both ways from the same model:

- ``aihf``: an :class:`~prefgym.agents.aihf.AIHF` agent (004's default SAC settings, (64, 64)
  nets, and its reward net). Old: the layout of earlier prefgym versions (``sac.zip`` from
  SB3's ``save`` + ``reward.pt`` from ``torch.save``), read by ``AIHF.load(...,
  trust_remote_code=True)``, which is the old loader (build the agent, then ``SAC.load`` the
  zip, which un-pickles its fields). New: ``AIHF.save`` / ``AIHF.load`` (rebuild the agent,
  load ``sac.safetensors`` and ``reward.safetensors`` into it).
- ``sac_expert``: an SB3 SAC with SB3's default (256, 256) nets, as ``prefgym data expert``
  trains. Old: ``model.save`` / ``SAC.load(path, device="cpu")``. New:
  :func:`prefgym.sb3_files.save_sb3_model` / :func:`~prefgym.sb3_files.load_sb3_model`
  (rebuild from the saved constructor arguments and spaces, load the tensors).

After one warm-up load of each, ``--rounds`` rounds each time one load of all four in turn
(interleaved, so drift of a shared machine hits all alike). The table gives the median and
the best load time per loader and the ratio new / old of the medians (target <= 1.10).
The 1-minute load average is printed before and after. Torch runs on one thread.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
import zipfile
from pathlib import Path


def _save_old_aihf(agent, path: Path) -> Path:
    """The file layout of prefgym before safetensors (SB3 zip + torch.save inside one zip)."""
    import torch

    from prefgym.serialization import json_default

    meta = {"class": "AIHF", "hparams": agent._get_hparams(), "env_id": agent.env_id,
            "num_iterations": agent.num_iterations, "pretrained": agent._pretrained,
            "rng": agent.rng.bit_generator.state, "history": agent.history}
    sac_buf, reward_buf = io.BytesIO(), io.BytesIO()
    agent.sac.save(sac_buf)
    torch.save({"reward_net": agent.reward_net.state_dict(),
                "optimizer": agent.reward_optimizer.state_dict()}, reward_buf)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("agent.json", json.dumps(meta, indent=2, default=json_default))
        zf.writestr("sac.zip", sac_buf.getvalue())
        zf.writestr("reward.pt", reward_buf.getvalue())
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--train-steps", type=int, default=300, help="SAC steps before saving (fills "
                        "the optimiser states)")
    args = parser.parse_args(argv)

    import gymnasium
    import torch
    from stable_baselines3 import SAC

    from prefgym.agents.aihf import AIHF
    from prefgym.sb3_files import load_sb3_model, save_sb3_model

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="safe_loaders_"))
    agent = AIHF(args.env, mode="rlhf", reward_pretrain_steps=0, seed=0,
                 sac_kwargs={"learning_starts": 100})
    agent.sac.learn(args.train_steps)
    aihf_old = _save_old_aihf(agent, tmp / "aihf_old.zip")
    aihf_new = agent.save(tmp / "aihf_new.zip")
    expert = SAC("MlpPolicy", gymnasium.make(args.env), seed=0, learning_starts=100, buffer_size=10_000)
    expert.learn(args.train_steps)
    sac_old = tmp / "sac_old.zip"
    expert.save(sac_old)
    sac_new = save_sb3_model(expert, tmp / "sac_new.zip")

    loaders = {
        ("aihf", "old"): lambda: AIHF.load(aihf_old, trust_remote_code=True),
        ("aihf", "new"): lambda: AIHF.load(aihf_new),
        ("sac_expert", "old"): lambda: SAC.load(sac_old, device="cpu"),
        ("sac_expert", "new"): lambda: load_sb3_model(sac_new, device="cpu"),
    }
    sizes = {("aihf", "old"): aihf_old, ("aihf", "new"): aihf_new, ("sac_expert", "old"): sac_old,
             ("sac_expert", "new"): sac_new}
    load_before = os.getloadavg()[0]
    for fn in loaders.values():  # warm-up: imports, first allocations
        fn()
    times: dict = {k: [] for k in loaders}
    for _ in range(args.rounds):
        for key, fn in loaders.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    load_after = os.getloadavg()[0]

    print(f"env {args.env}, {args.rounds} interleaved rounds, torch threads 1; "
          f"load average (1 min) before {load_before:.2f}, after {load_after:.2f}")
    print("| file | loader | median load (ms) | best (ms) | file size (kB) | new / old (median) |")
    print("|---|---|---|---|---|---|")
    result = {"env": args.env, "rounds": args.rounds, "loadavg": [load_before, load_after]}
    for what in ("aihf", "sac_expert"):
        med = {how: statistics.median(times[(what, how)]) for how in ("old", "new")}
        ratio = med["new"] / med["old"]
        result[what] = {"old_ms": 1e3 * med["old"], "new_ms": 1e3 * med["new"], "ratio": ratio}
        for how in ("old", "new"):
            label = {"old": "old (SB3 zip, pickle)", "new": "new (JSON + safetensors)"}[how]
            shown = f"{ratio:.2f}" if how == "new" else ""
            print(f"| {what} | {label} | {1e3 * med[how]:.1f} | {1e3 * min(times[(what, how)]):.1f} | "
                  f"{sizes[(what, how)].stat().st_size / 1e3:.0f} | {shown} |")
    return result


if __name__ == "__main__":
    main()
