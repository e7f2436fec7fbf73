"""How far one aihf-mujoco run drifts when only the floating-point kernels change.

    python scripts/aihf_determinism_check.py --expert RUN/Hopper-v5/expert [--steps 4000]

Each configuration runs in a fresh process: the data pipeline of the reproduction
(checkpoint rollouts of a saved SAC expert -> tiers -> demonstrations and preference pairs,
:func:`prefgym.reproductions.aihf_mujoco._make_data`, small sizes) and one AIHF learner
(:func:`~prefgym.reproductions.aihf_mujoco.train_and_evaluate`, seed 0), with

- ``threads``: torch intra-op threads (the reproduction uses 1; here also 2), and
- ``ATEN_CPU_CAPABILITY``: the SIMD kernels ATen dispatches to (``default`` / ``avx2`` /
  ``avx512``), and ``MKL_ENABLE_INSTRUCTIONS`` (e.g. ``AVX2``), the ISA MKL's GEMMs use:
  these stand in for running on a different CPU.

By default the first configuration runs twice (a rerun must give identical numbers). Prints one JSON
line per configuration: data tiers, evaluation returns, the last reward statistics
and the CPU / wall time; then the largest differences from the first configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = "1,1,2,1:avx2,1:default,1:mkl=AVX2"


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_threads = lambda n: None  # keep this count inside train_and_evaluate (which sets 1)
    from prefgym.reproductions import aihf_mujoco as am

    cfg = dict(am.BUDGETS["small"], env=args.env, steps_per_checkpoint=args.rollout_steps,
               demo_steps=args.demo_steps, n_pairs=args.pairs)
    out = Path(args.workdir)
    t0, c0 = time.perf_counter(), time.process_time()
    data = am._make_data(cfg, out, progress=False)
    table = am.data_quality_table(data["episodes"], data["demos"], data["prefs"])
    job = {k: cfg[k] for k in ("env", "env_kwargs", "sac_steps_per_iter", "reward_steps_per_iter",
                               "reward_lr", "reward_pretrain_steps", "bc_steps")}
    job.update(mode="aihf", seed=0, total_steps=args.steps, eval_every=args.eval_every,
               eval_episodes=args.eval_episodes, demos=data["demo_arrays"], prefs=data["prefs"])
    r = am.train_and_evaluate(job)
    print(json.dumps({
        "threads": torch.get_num_threads(), "capability": torch.backends.cpu.get_cpu_capability(),
        "tiers": [table[k]["mean_return"] for k in ("non_prefer", "prefer", "demonstration")],
        "returns": np.asarray(r["returns"]).tolist(), "steps": r["steps"],
        "reward_stats": r["last_reward_stats"],
        "cpu_s": round(time.process_time() - c0, 1), "wall_s": round(time.perf_counter() - t0, 1),
    }))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--expert", required=True,
                   help="a saved expert folder (expert.json, checkpoints/); read only")
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=4000, help="SAC steps of the AIHF learner")
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--rollout-steps", type=int, default=500, help="rollout steps per checkpoint")
    p.add_argument("--demo-steps", type=int, default=2000)
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--configs", default=CONFIGS,
                   help="THREADS[:KERNELS],... with KERNELS an ATEN_CPU_CAPABILITY (avx2, default) and/or "
                        "mkl=ISA (MKL_ENABLE_INSTRUCTIONS) and/or cbwr=BRANCH (MKL_CBWR), joined by +; "
                        f"the first is the reference (default {CONFIGS})")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    print(f"load average {os.getloadavg()}", flush=True)
    results = []
    configs = [(int(c.split(":")[0]), c.split(":")[1] if ":" in c else None) for c in args.configs.split(",")]
    for threads, kernels in configs:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(args.expert, Path(tmp) / "expert")  # _make_data reuses out/expert
            # passive OpenMP waits: spinning threads on a busy machine cost time, not bits
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                   "OMP_WAIT_POLICY": "PASSIVE"}
            env.pop("ATEN_CPU_CAPABILITY", None)
            env.pop("MKL_ENABLE_INSTRUCTIONS", None)
            env.pop("MKL_CBWR", None)
            for token in (kernels or "").split("+"):
                if token.startswith("mkl="):  # MKL's own dispatch (its GEMMs ignore ATen's)
                    env["MKL_ENABLE_INSTRUCTIONS"] = token[4:]
                elif token.startswith("cbwr="):  # MKL conditional numerical reproducibility
                    env["MKL_CBWR"] = token[5:]
                elif token:
                    env["ATEN_CPU_CAPABILITY"] = token
            cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--workdir", tmp,
                   "--expert", args.expert,
                   *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                     if k in ("env", "steps", "eval_every", "eval_episodes", "rollout_steps", "demo_steps",
                              "pairs"))]
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return out.returncode
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["process_cpu_s"] = round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 1)
            r["load"] = os.getloadavg()[0]
            r["kernels"] = kernels or "native"
            results.append(r)
            print(json.dumps(r), flush=True)
    import numpy as np

    base = results[0]
    for r in results[1:]:
        tiers = float(np.max(np.abs(np.subtract(r["tiers"], base["tiers"]))))
        rets = np.abs(np.subtract(r["returns"], base["returns"]))
        print(f"threads {r['threads']} {r['kernels']:>14}: max |tier mean diff| {tiers:.3g}, "
              f"max |episode return diff| {rets.max():.3g}, final mean return "
              f"{np.mean(r['returns'][-1]):.1f} vs {np.mean(base['returns'][-1]):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
