"""CPU microseconds per update of the tabular agents; run it on two checkouts to compare them.

    python benchmarks/tabular_update_cost.py [--repeats 3]
    PYTHONPATH=/path/to/other/checkout python benchmarks/tabular_update_cost.py   # the same on other code

One game with n = 10 actions (20 000 updates) and a batch of 256 such games (2 000 updates),
planted NE of rank 3 (002's Algorithm 1), one thread. Prints a table of the median over
``--repeats`` runs and the load average (timings on a shared machine are noisy: compare
versions by alternating runs, as BENCHMARKS.md did).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from prefgym.agents.tabular import MPO, MWU, OMWU, NashMD
from prefgym.games.matrix import planted_nash

AGENTS = {"md": MWU, "omwu": OMWU, "mpo": MPO, "nash_md": NashMD}


def update_cost(cls, game, updates: int) -> float:
    """CPU microseconds per update of ``cls`` on ``game`` (after 10 warm-up updates)."""
    agent = cls(game, seed=0)
    agent.learn(10, progress_bar=False)
    start = time.process_time()
    agent.learn(updates, progress_bar=False)
    return (time.process_time() - start) / updates * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    games = {"n = 10": (planted_nash(10, 3, seed=0), 20_000),
             "batch of 256": (planted_nash(10, 3, seed=0, batch=256), 2_000)}
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| agent | " + " | ".join(games) + " |")
    print("|---|" + "---|" * len(games))
    for name, cls in AGENTS.items():
        cells = [np.median([update_cost(cls, g, t) for _ in range(args.repeats)]) for g, t in games.values()]
        print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
