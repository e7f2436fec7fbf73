"""Speed of the tabular solvers: throughput, time to a duality gap, BLAS floor, batching.

Run from the repository root::

    python benchmarks/tabular.py            # full table, about 40 s on 2 cores
    python benchmarks/tabular.py --help     # sizes, repeats, learning rates

Prints one markdown table with

1. OMWU and MPO (MMD with magnet refresh) at each ``n``: updates per second
   (best of ``--repeats`` timings of ``--updates`` updates after a warm-up) and
   the wall time and number of updates until the last-iterate duality gap is
   ``<= --tol`` (``StopTrainingOnGap``), capped at ``--max-iters``, on
   ``planted_nash(n, rank=n-2, seed=0)`` (payoff of rank 2: a polytope of
   full-support Nash equilibria, reachable) and on ``random_skew_symmetric(n,
   seed=0)`` (harder; "not reached in N" is printed when it is not reached);
2. the arithmetic floor: the best time of two dense ``n x n`` float64 mat-vecs
   ``A @ x`` and the ratio (seconds per update) / (two mat-vecs). A tabular
   update does one mat-vec, so at large ``n`` the ratio tends to 1/2; at small
   ``n`` Python overhead dominates;
3. one OMWU agent over a batch of ``--batch`` games of size ``--batch-n`` vs a
   Python loop of one agent per game, both for ``--batch-T`` updates, with the
   largest difference of the final policies.

Timings use ``time.perf_counter``; every game and policy is seeded.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import sys
import time

import numpy as np

from prefgym.agents.callbacks import StopTrainingOnGap
from prefgym.agents.tabular.magnetic import MPO
from prefgym.agents.tabular.mirror import OMWU
from prefgym.games.matrix import planted_nash, random_skew_symmetric


# ----------------------------------------------------------------- environment
def blas_threads() -> str:
    """BLAS thread count: threadpoolctl if installed, else an OpenBLAS probe by ctypes."""
    try:
        import threadpoolctl
    except ImportError:
        pass
    else:
        info = [d for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
        if info:
            return "; ".join(f"{d.get('internal_api')} {d.get('version')}: {d.get('num_threads')} threads "
                             "(threadpoolctl)" for d in info)
        return "unknown (threadpoolctl found no BLAS)"
    msg = "unknown (threadpoolctl not installed)"
    try:  # the BLAS numpy loaded is in our own memory map
        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "blas" in line.lower() and ".so" in line})
    except OSError:
        return msg
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("openblas", ""), ("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_")):
            fn = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if fn is None:
                continue
            fn.restype = ctypes.c_int
            core = getattr(lib, f"{prefix}_get_corename{suffix}", None)
            corename = ""
            if core is not None:
                core.restype = ctypes.c_char_p
                corename = f", core {core().decode()}"
            return (f"{msg}; ctypes probe of {os.path.basename(path)}: {prefix}_get_num_threads{suffix}() "
                    f"= {fn()}{corename}")
    return msg


# --------------------------------------------------------------------- helpers
def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def matvec_pair_time(A: np.ndarray, repeats: int, seed: int = 0) -> float:
    """Best time of two ``A @ x`` (float64, dense)."""
    x = np.random.default_rng(seed).dirichlet(np.ones(A.shape[-1]))
    A @ x  # warm-up: the matrix into cache, the BLAS threads awake
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        A @ x
        A @ x
        best = min(best, time.perf_counter() - t)
    return best


def seconds_per_update(make_agent, warmup: int, updates: int, repeats: int) -> float:
    """Best over ``repeats`` of (time of ``agent.learn(updates)``) / updates, after a warm-up."""
    agent = make_agent()
    agent.learn(warmup)
    return best_time(lambda: agent.learn(updates), repeats) / updates


def time_to_gap(make_agent, tol: float, cap: int, repeats: int) -> tuple[bool, int, float, float]:
    """(reached, updates, best wall time incl. construction, final gap) of learning until gap <= tol."""
    best, reached, iters, gap = float("inf"), False, cap, float("nan")
    for _ in range(repeats):
        t = time.perf_counter()
        agent = make_agent()
        agent.learn(cap, callback=StopTrainingOnGap(tol))
        dt = time.perf_counter() - t
        gap = float(agent.current_gap())
        reached, iters = gap <= tol, agent.num_iterations
        best = min(best, dt)
        if not reached:  # the cap is hit: one run says it all
            break
    return reached, iters, best, gap


def gap_cell(result: tuple[bool, int, float, float], cap: int) -> str:
    reached, iters, dt, gap = result
    if reached:
        return f"{iters} it, {fmt_time(dt)}"
    return f"not reached in {cap} (gap {gap:.1e} after {fmt_time(dt)})"


# ------------------------------------------------------------------------ main
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000", help="comma-separated numbers of actions n")
    p.add_argument("--updates", type=int, default=5000, help="updates per throughput timing")
    p.add_argument("--warmup", type=int, default=200, help="updates before the throughput timings")
    p.add_argument("--repeats", type=int, default=5, help="throughput timings (best is kept)")
    p.add_argument("--matvec-repeats", type=int, default=2000, help="timings of two mat-vecs (best kept)")
    p.add_argument("--tol", type=float, default=1e-6, help="duality-gap threshold")
    p.add_argument("--max-iters", type=int, default=50000, help="cap on updates of a time-to-gap run")
    p.add_argument("--gap-repeats", type=int, default=3, help="time-to-gap runs (best time kept)")
    p.add_argument("--no-random-gap", action="store_true",
                   help="skip the time-to-gap runs on random_skew_symmetric")
    p.add_argument("--omwu-lr", type=float, default=4.0, help="OMWU learning rate eta")
    p.add_argument("--mpo-lr", type=float, default=2.0, help="MPO learning rate eta")
    p.add_argument("--mpo-alpha", type=float, default=0.05, help="MPO magnet strength alpha")
    p.add_argument("--mpo-refresh", type=int, default=50, help="MPO magnet refresh period")
    p.add_argument("--batch", type=int, default=1024, help="games in the batched-vs-loop comparison")
    p.add_argument("--batch-n", type=int, default=10, help="actions per game of the batch")
    p.add_argument("--batch-T", type=int, default=2000, help="updates in the batched-vs-loop comparison")
    p.add_argument("--batch-lr", type=float, default=1.0, help="OMWU learning rate of that comparison")
    p.add_argument("--batch-repeats", type=int, default=1,
                   help="timings of the batched run and of the loop (best kept)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    print(f"# prefgym tabular benchmark  ({' '.join(sys.argv)})")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}")
    print(f"BLAS threads: {blas_threads()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        print(f"{var}={os.environ.get(var, '(unset)')}")
    print()

    omwu_label = f"OMWU (eta={args.omwu_lr:g})"
    mpo_label = (f"MPO = MMD + magnet refresh (eta={args.mpo_lr:g}, alpha={args.mpo_alpha:g}, "
                 f"refresh every {args.mpo_refresh})")

    def omwu(game):
        return OMWU(game, learning_rate=args.omwu_lr, seed=0)

    def mpo(game):
        return MPO(game, learning_rate=args.mpo_lr, alpha=args.mpo_alpha,
                   magnet_refresh_every=args.mpo_refresh, seed=0)

    rows1: list[tuple[str, ...]] = []  # section 1 (throughput, time to gap)
    rows2: list[tuple[str, ...]] = []  # section 2 (the arithmetic floor)
    makers = (("omwu", omwu), ("mpo", mpo))

    def gap_cells(game) -> list[str]:
        return [gap_cell(time_to_gap(lambda m=make, g=game: m(g), args.tol, args.max_iters, args.gap_repeats),
                         args.max_iters) for _, make in makers]

    for n in sizes:
        rand = random_skew_symmetric(n, seed=0)
        # 1. throughput on the random game
        spu = {name: seconds_per_update(lambda m=make, g=rand: m(g), args.warmup, args.updates, args.repeats)
               for name, make in makers}
        rows1.append(("1. updates per second", str(n), f"{1 / spu['omwu']:,.0f} it/s",
                      f"{1 / spu['mpo']:,.0f} it/s",
                      f"random_skew_symmetric(n, seed=0); best of {args.repeats} x {args.updates} updates"))
        # 1. time to the gap
        gap_label = f"1. time to gap <= {args.tol:g}"
        rows1.append((gap_label, str(n), *gap_cells(planted_nash(n, rank=n - 2, seed=0)),
                      "planted_nash(n, rank=n-2, seed=0); wall time incl. construction, "
                      f"best of {args.gap_repeats}"))
        if not args.no_random_gap:
            rows1.append((gap_label, str(n), *gap_cells(rand), "random_skew_symmetric(n, seed=0)"))
        # 2. the arithmetic floor
        floor = matvec_pair_time(rand.payoff, args.matvec_repeats if n < 1000 else
                                 max(1, args.matvec_repeats // 4))
        rows2.append(("2. two mat-vecs A @ x (float64)", str(n), fmt_time(floor), "", "best of many"))
        note = "target <= 3" if n >= 1000 else "info only: Python overhead dominates at this n"
        rows2.append(("2. (s per update) / (two mat-vecs)", str(n), f"{spu['omwu'] / floor:.2f}",
                      f"{spu['mpo'] / floor:.2f}",
                      f"{note}; s/update: OMWU {fmt_time(spu['omwu'])}, MPO {fmt_time(spu['mpo'])}"))

    # 3. batched vs loop
    B, m, T = args.batch, args.batch_n, args.batch_T
    games = random_skew_symmetric(m, seed=0, batch=B)
    batched = {}

    def run_batched():
        batched["policy"] = OMWU(games, learning_rate=args.batch_lr, seed=0).learn(T).policy

    looped = {}

    def run_loop():
        looped["policy"] = np.stack([OMWU(games[i], learning_rate=args.batch_lr, seed=0).learn(T).policy
                                     for i in range(B)])

    rows = [*rows1, *rows2]
    t_batch = best_time(run_batched, args.batch_repeats)
    t_loop = best_time(run_loop, args.batch_repeats)
    diff = float(np.abs(batched["policy"] - looped["policy"]).max())
    what = f"random_skew_symmetric({m}, seed=0, batch={B}), OMWU eta={args.batch_lr:g}, T={T}"
    rows.append(("3. one agent over the batch", str(m), fmt_time(t_batch), "",
                 f"{what}; {fmt_time(t_batch / T)} per batched update"))
    rows.append(("3. Python loop, one agent per game[i]", str(m), fmt_time(t_loop), "",
                 f"best of {args.batch_repeats}; includes game[i] and agent construction"))
    rows.append(("3. speed-up loop / batched", str(m), f"{t_loop / t_batch:.1f}x", "", "target >= 20x"))
    rows.append(("3. max abs diff of final policies", str(m), f"{diff:.1e}", "", "batched vs loop"))

    header = ("measurement", "n", omwu_label, mpo_label, "notes")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
