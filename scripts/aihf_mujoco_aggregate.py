"""Aggregate finished aihf-mujoco task folders (one per MuJoCo task) without rerunning anything.

    python scripts/aihf_mujoco_aggregate.py RUNS/Hopper-v5 RUNS/HalfCheetah-v5 RUNS/Walker2d-v5 --out RUNS

reads each folder's ``summary.json`` and writes into ``--out`` the three-panel Figure 5
analogue (``aihf_mujoco_tasks.png``), the interval plot (``aihf_mujoco_intervals.png``),
``aihf_mujoco_aggregate.csv`` / ``.json``, ``aihf_mujoco_table1.csv``, and prints the
verdicts per task and across tasks (:mod:`prefgym.reproductions.aihf_mujoco_stats`).
"""

from __future__ import annotations

import argparse
import sys

from prefgym.errors import PrefgymError
from prefgym.reproductions.aihf_mujoco_stats import aggregate_folders
from prefgym.reproductions.rl_intervals import DEFAULT_REPS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="aihf-mujoco task folders, each holding summary.json")
    p.add_argument("--out", required=True, help="folder for the aggregate figures and tables")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS,
                   help=f"bootstrap samples (default {DEFAULT_REPS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    args = p.parse_args(argv)
    try:
        result = aggregate_folders(args.folders, args.out, reps=args.reps, seed=args.seed)
    except PrefgymError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for env, r in result["tasks"].items():
        print(f"== {env}: normaliser random {r['normalisation']['random']:.1f}, demonstrations "
              f"{r['normalisation']['demonstration']:.1f}")
        for claim, text in r["verdicts"].items():
            print(f"  - {claim}\n      {text}")
    if "all_tasks" in result:
        print(f"== across {', '.join(result['all_tasks']['tasks'])} (stratified bootstrap)")
        for claim, text in result["all_tasks"]["verdicts"].items():
            print(f"  - {claim}\n      {text}")
    print("files: " + ", ".join(result["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
