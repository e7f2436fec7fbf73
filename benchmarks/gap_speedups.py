"""Speed of the exact-gap shortcuts in :mod:`prefgym.games.matrix`, against the code they replaced.

Run from the repository root::

    python benchmarks/gap_speedups.py            # about 20 s
    python benchmarks/gap_speedups.py --help

Prints one markdown table. For each game size ``n`` (``random_skew_symmetric(n, seed=0)``,
a seeded random interior ``pi``), old and new code are timed interleaved in this one
process (``--rounds`` rounds, each the best of ``--repeats`` timings of ``--calls`` calls
per variant, old and new alternating), and the ratio old / new is the median over rounds:

1. ``duality_gap(pi)``: new, one mat-vec ``2 max_a (A pi)(a)`` (``A^T = -A``); old,
   ``exploitability(pi) + exploitability(pi)`` (two mat-vecs, two checks);
2. ``regularized_duality_gap(pi, tau)``: new, a NumPy max-shift logsumexp; old,
   ``scipy.special.logsumexp``;

with the largest absolute difference of the two results. Then, in fresh interpreters:
whether ``import prefgym.games`` loads ``scipy.optimize`` (it should not), and the time
``import scipy.optimize`` takes on its own (what a user who never solves an LP saves).
The 1-, 5- and 15-minute load averages are printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from scipy.special import logsumexp

from prefgym.games.matrix import MatrixGame, random_skew_symmetric
from prefgym.simplex import kl


def old_duality_gap(game: MatrixGame, pi: np.ndarray) -> np.ndarray:
    """The replaced code: ``rho = pi``, then two exploitabilities."""
    rho = pi
    return game.exploitability(rho) + game.exploitability(pi)


def old_regularized_duality_gap(game: MatrixGame, pi: np.ndarray, tau: float) -> np.ndarray:
    """The replaced code: the same checks and mat-vec, SciPy's logsumexp."""
    ref = np.full(game.n_actions, 1.0 / game.n_actions)
    pi = game._strategy(pi, "pi")
    g = game._payoff_vector(pi)
    return 2.0 * tau * (logsumexp(np.log(ref) + g / tau, axis=-1) + kl(pi, ref))


def _best(fn, calls: int, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / calls


def interleaved_ratio(old, new, calls: int, repeats: int, rounds: int) -> tuple[float, float, float]:
    """(median old seconds per call, median new seconds per call, median old/new ratio)."""
    olds, news, ratios = [], [], []
    for _ in range(rounds):
        to, tn = _best(old, calls, repeats), _best(new, calls, repeats)
        olds.append(to)
        news.append(tn)
        ratios.append(to / tn)
    return statistics.median(olds), statistics.median(news), statistics.median(ratios)


def _fresh(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 100, 1000])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tau", type=float, default=0.1)
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}; numpy {np.__version__}")
    print("| n | call | old us/call | new us/call | old / new | max abs diff |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        game = random_skew_symmetric(n, seed=0)
        pi = rng.dirichlet(np.ones(n))
        calls = max(50, args.calls // max(1, n // 10))
        cases = [
            ("duality_gap(pi)", lambda g=game, p=pi: old_duality_gap(g, p),
             lambda g=game, p=pi: g.duality_gap(p)),
            ("regularized_duality_gap(pi, tau)",
             lambda g=game, p=pi: old_regularized_duality_gap(g, p, args.tau),
             lambda g=game, p=pi: g.regularized_duality_gap(p, args.tau)),
        ]
        for label, old, new in cases:
            diff = float(np.max(np.abs(np.asarray(old()) - np.asarray(new()))))
            to, tn, ratio = interleaved_ratio(old, new, calls, args.repeats, args.rounds)
            print(f"| {n} | {label} | {to * 1e6:.2f} | {tn * 1e6:.2f} | {ratio:.2f} | {diff:.1e} |")
    loads_optimize = _fresh("import sys, prefgym.games; print('scipy.optimize' in sys.modules)")
    t_opt = _fresh("import time; t=time.perf_counter(); import scipy.optimize; "
                   "print(f'{time.perf_counter() - t:.3f}')")
    print(f"\n`import prefgym.games` loads scipy.optimize: {loads_optimize}; "
          f"`import scipy.optimize` alone in a fresh interpreter: {t_opt} s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
