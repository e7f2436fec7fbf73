"""Speed of the tabular Markov-game code: exploitability and one OMPO update vs a memory-pass floor.

Run from the repository root::

    python benchmarks/markov.py              # both sizes, about 45 s on 2 cores (9 s of it
                                             # building the 800 MB dense preference)
    python benchmarks/markov.py --profile    # and where the time goes, with prototypes (50 s)
    python benchmarks/markov.py --help       # sizes, repeats, dense-preference memory rule

For each ``(S, A, H)`` (default ``(100, 10, 10)`` and ``(1000, 10, 20)``) the game is
gridworld-like: the grid moves of :func:`~prefgym.games.gridworld.grid_transitions`
(a random move per state-action, slip 0.1) stored as a dense ``(S, A, S)`` tensor
shared by every step, one start cell, and two step preferences:

- dense: ``r = 1/2 + (M - M^T)/2`` over flattened ``(s, a)`` (as
  :func:`~prefgym.games.gridworld.random_gridworld`), ``(SA)^2`` float64: 8 MB at
  ``S = 100`` and 800 MB at ``S = 1000``. The large one is built only when the
  machine has ``--dense-min-free-gb`` of available memory (``MemAvailable``;
  default 8 GB, about twice the measured peak of building it); otherwise its rows
  say "skipped";
- features: :class:`~prefgym.games.step_preference.FeatureStepPreference` with
  ``k = 16`` random features in ``[0, 1]`` and a random skew ``Omega`` scaled so
  that ``r`` stays in ``[0, 1]``.

Timed (best of ``--repeats``, ``time.perf_counter``):

1. ``game.exploitability(pi)`` for a random full-support policy: one forward
   pass for the occupancy, the step preference, one best-response backward pass;
2. one OMPO update, occupancy form (Thm 10) and policy form (Alg. 2), as
   ``agent.learn(1)``: the update (Q backward pass and mirror step), the new
   iterate's occupancy (forward pass) and stage payoff, and the exploitability
   of the last and the average iterate (two backward passes) that every update
   records; and the bare update ``agent._update()`` alone.

The floor: one pass over the transition tensor per step, ``H`` times the best
time of ``f.reshape(S * A, S) @ v`` (one float64 GEMV that reads all of ``f``
once; both the forward ``d_h -> rho_{h+1}`` and the backward ``V_{h+1} -> Q_h``
recursions are one such pass per step, so no exact method can do less). The
table gives each time as a multiple of that floor and the number of passes an
implementation needs at least (exploitability 2: forward and backward; a
recorded OMPO update 4: Q backward, occupancy forward, two best-response
backward passes, which could share one pass as a two-column GEMM). With the
dense preference the stage payoff also reads the ``(SA)^2`` tensor once per
evaluation (it is stage-independent, so one GEMM over all steps); its pass is
timed and shown as a second floor.

``--profile`` adds a breakdown of where the time goes, with prototype
replacements of the slow pieces (not applied to the library) and their gains.

BLAS: the benchmark sets OpenBLAS to ``--blas-threads`` threads (default 1)
in its own process, through the OpenBLAS ``set_num_threads`` symbol (the same
helper the ``ompo-gridworld`` reproduction uses): on the shared 2-core
development machine the second thread made small mat-vecs several times slower
under load. The count is printed with the table.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import resource
import sys
import time
from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp

from prefgym.agents.markov import OMPO
from prefgym.agents.markov.base import exploitability_from_payoff
from prefgym.agents.rules import log_normalize
from prefgym.games.gridworld import GridLayout, grid_transitions
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.step_preference import DenseStepPreference, FeatureStepPreference
from prefgym.reproductions.ompo_gridworld import blas_threads


# --------------------------------------------------------------------- games
def transitions(S: int, A: int, rng: np.random.Generator) -> np.ndarray:
    """Dense ``(S, A, S)`` grid moves with slip 0.1 (as ``random_gridworld``)."""
    moves = rng.integers(0, 5, size=(S, A))
    return grid_transitions(GridLayout.near_square(S), moves, 0.1)


def dense_preference(S: int, A: int, rng: np.random.Generator) -> DenseStepPreference:
    """``r = 1/2 + (M - M^T)/2`` over flattened ``(s, a)``, built with few temporaries."""
    n = S * A
    r = rng.random((n, n))
    r -= r.T.copy()
    r *= 0.5
    r += 0.5
    pref = DenseStepPreference(r.reshape(S, A, S, A))
    del r
    gc.collect()
    return pref


def feature_preference(S: int, A: int, k: int, rng: np.random.Generator) -> FeatureStepPreference:
    """``k`` features in ``[0, 1]``, random skew ``Omega`` scaled so that ``|phi^T Omega phi'| <= 1/2``."""
    phi = rng.random((S, A, k))
    B = rng.standard_normal((k, k))
    om = B - B.T
    om *= 0.5 / (k**2 * np.abs(om).max())  # |phi^T Omega phi'| <= k^2 max|Omega| = 1/2
    return FeatureStepPreference(phi, om)


def available_gb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


# --------------------------------------------------------------------- timing
def best_time(fn: Callable[[], object], repeats: int, min_time: float = 0.0) -> float:
    """Best of ``repeats`` calls (more while the total stays under ``min_time`` seconds)."""
    fn()  # warm-up
    best, total, n = float("inf"), 0.0, 0
    while n < repeats or total < min_time:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, total, n = min(best, dt), total + dt, n + 1
        if n >= 50 * repeats:
            break
    return best


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def pass_time(f: np.ndarray, repeats: int) -> float:
    """Best time of one GEMV ``f.reshape(S*A, S) @ v``: one read of the transition tensor."""
    S = f.shape[-1]
    f2 = f.reshape(-1, S)
    v = np.random.default_rng(0).random(S)
    return best_time(lambda: f2 @ v, repeats, min_time=0.2)


# --------------------------------------------------------------------- prototypes
def occupancy_gemv(game: TabularMarkovGame, pi: np.ndarray) -> np.ndarray:
    """Prototype of ``TabularMarkovGame.occupancy`` with a BLAS vec-mat and no re-validation."""
    K, H, S, A = game.policy_shape
    d = np.empty(game.policy_shape)
    rho = np.zeros((K, S))
    rho[np.arange(K), game.initial_states] = 1.0
    for h in range(H):
        d[:, h] = rho[:, :, None] * pi[:, h]
        if h + 1 < H:
            rho = d[:, h].reshape(K, S * A) @ game.step_transitions(h).reshape(S * A, S)
    return d


def soft_q_gemv(game: TabularMarkovGame, pi: np.ndarray, reward: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Prototype of ``q_values(soft_beta=...)`` with a BLAS mat-vec and a NumPy log-sum-exp."""
    K, H, S, A = game.policy_shape
    Q = np.empty_like(reward)
    V = np.zeros((K, S))
    logpi = np.log(pi)
    for h in range(H - 1, -1, -1):
        q = reward[:, h]
        if h + 1 < H:
            q = q + (V @ game.step_transitions(h).reshape(S * A, S).T).reshape(K, S, A)
        Q[:, h] = q
        z = logpi[:, h] + betas[h] * q
        m = z.max(axis=-1, keepdims=True)
        V = (m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))) / betas[h]
    return Q


def fused_backward(game: TabularMarkovGame, pi: np.ndarray, reward: np.ndarray, betas: np.ndarray,
                   payoffs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, list[float]]:
    """Prototype: the soft Q of the next update and the best-response values in one backward pass.

    Every step reads ``f`` once for all right-hand sides (``V`` of the soft Q and
    one ``V`` per best response): a GEMM with ``1 + len(payoffs)`` columns instead
    of that many GEMVs. Returns the soft Q and the exploitabilities.
    """
    K, H, S, A = game.policy_shape
    n = 1 + len(payoffs)
    Q = np.empty_like(reward)
    V = np.zeros((n, K, S))
    logpi = np.log(pi)
    for h in range(H - 1, -1, -1):
        r = np.stack([reward[:, h], *(p[:, h] for p in payoffs)])  # (n, K, S, A)
        if h + 1 < H:
            r = r + (V.reshape(n * K, S) @ game.step_transitions(h).reshape(S * A, S).T).reshape(n, K, S, A)
        Q[:, h] = r[0]
        z = logpi[:, h] + betas[h] * r[0]
        m = z.max(axis=-1, keepdims=True)
        V[0] = (m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))) / betas[h]
        V[1:] = r[1:].max(axis=-1)
    values = [float(V[i + 1][np.arange(K), game.initial_states] @ game.initial_weights) for i in range(n - 1)]
    return Q, values


# --------------------------------------------------------------------- main
def measure(S: int, A: int, H: int, pref_kind: str, args, rows: list, profile_rows: list) -> None:
    rng = np.random.default_rng(0)
    f = transitions(S, A, rng)
    t0 = time.perf_counter()
    pref = dense_preference(S, A, rng) if pref_kind == "dense" else feature_preference(S, A, args.k, rng)
    nu = np.zeros(S)
    nu[0] = 1.0
    game = TabularMarkovGame(f, pref, nu, H)
    build = time.perf_counter() - t0
    size = f"{S}, {A}, {H}"
    label = "dense (SA)^2" if pref_kind == "dense" else f"features k={args.k}"
    floor = H * pass_time(game.transitions[0], args.repeats)
    notes = f"game built in {fmt_time(build)}"
    if pref_kind == "dense":
        P = pref._skew[0]
        x = rng.random(P.shape[0])
        p_pass = best_time(lambda: P @ x, args.repeats, min_time=0.2)
        X = rng.random((P.shape[0], H))
        p_gemm = best_time(lambda: P @ X, args.repeats, min_time=0.2)
        notes += (f"; one pass over the preference {fmt_time(p_pass)} (GEMV), stage payoff of all H steps "
                  f"{fmt_time(p_gemm)} (GEMM, = {p_gemm / floor:.1f} x floor)")
    rows.append((size, label, "floor: H x one pass over f (GEMV)", fmt_time(floor), "1.0", "1", notes))
    pi = rng.dirichlet(np.ones(A), size=(1, H, S))
    t_expl = best_time(lambda: game.exploitability(pi), args.repeats)
    rows.append((size, label, "game.exploitability(pi)", fmt_time(t_expl), f"{t_expl / floor:.1f}", "2",
                 "forward occupancy + preference + best-response backward"))
    agents = {}
    for form in ("occupancy", "policy"):
        agent = OMPO(game, learning_rate=1.0, form=form)
        agent.learn(2)
        agents[form] = agent
        t_learn = best_time(lambda a=agent: a.learn(1), args.repeats)
        t_upd = best_time(lambda a=agent: a._update(), args.repeats)
        rows.append((size, label, f"OMPO update, {form} form: learn(1)", fmt_time(t_learn),
                     f"{t_learn / floor:.1f}", "4", "update + occupancy + payoff + 2 exploitabilities"))
        rows.append((size, label, f"OMPO update, {form} form: _update() only", fmt_time(t_upd),
                     f"{t_upd / floor:.1f}", "1", "Q backward pass + mirror step"))
    if args.profile:
        profile(game, agents["occupancy"], pi, floor, size, label, args, profile_rows)


def profile(game, agent, pi, floor, size, label, args, out: list) -> None:
    """Break one recorded occupancy-form update into its parts; time prototype replacements."""
    K, H, S, A = game.policy_shape
    f = game.step_transitions(0)
    V = np.random.default_rng(1).random((K, S))
    d_h = game.occupancy(pi)[:, 0]
    payoff = game.stage_payoff(game.occupancy(pi))
    reward = 2 * payoff - agent.prev_payoff
    betas = agent._betas
    occ = game.occupancy(pi)
    parts = {
        "one backward step: einsum 'sat,...t->...sa' (library)": lambda: np.einsum("sat,...t->...sa", f, V),
        "one backward step: V @ f.reshape(SA,S).T (BLAS)": lambda: (V @ f.reshape(S * A, S).T),
        "one forward step: einsum '...sa,sat->...t' (library)": lambda: np.einsum("...sa,sat->...t", d_h, f),
        "one forward step: d.reshape(SA) @ f.reshape(SA,S) (BLAS)": lambda: d_h.reshape(K, S * A) @ f.reshape(
            S * A, S),
        "game.check_policy(pi)": lambda: game.check_policy(pi),
        "game.occupancy(pi) (library)": lambda: game.occupancy(pi),
        "occupancy prototype (BLAS, no re-check)": lambda: occupancy_gemv(game, pi),
        "game.stage_payoff(d)": lambda: game.stage_payoff(occ),
        "game.best_response(pi) (library: forward + payoff + backward)": lambda: game.best_response(pi),
        "exploitability_from_payoff (agent's backward pass, BLAS)": lambda: exploitability_from_payoff(
            game, payoff),
        "game.q_values soft (library: einsum + scipy logsumexp)": lambda: game.q_values(pi, reward,
                                                                                         soft_beta=betas),
        "soft Q prototype (BLAS + NumPy log-sum-exp)": lambda: soft_q_gemv(game, pi, reward, betas),
        "scipy logsumexp over (K,S,A), one step": lambda: logsumexp(np.log(pi[:, 0]) + reward[:, 0], axis=-1),
        "log_normalize(logits) (agent)": lambda: log_normalize(agent.logits),
    }
    for name, fn in parts.items():
        t = best_time(fn, args.repeats)
        out.append((size, label, name, fmt_time(t), f"{t / floor:.2f}"))
    # the whole recorded update with the prototypes: occupancy + payoff + 2 BR values + soft Q + step

    def proto_update():
        q = soft_q_gemv(game, agent.policy, reward, betas)
        logits, pol = log_normalize(agent.logits + betas[:, None, None] * q)
        d = occupancy_gemv(game, pol)
        r = game.stage_payoff(d)
        exploitability_from_payoff(game, r)
        exploitability_from_payoff(game, r)
    def fused_update():
        logits, pol = log_normalize(agent.logits + betas[:, None, None] * Q_next[0])
        d = occupancy_gemv(game, pol)
        r = game.stage_payoff(d)
        Q_next[0] = fused_backward(game, pol, 2 * r - payoff, betas, (r, r))[0]

    Q_next = [soft_q_gemv(game, agent.policy, reward, betas)]
    V1 = np.random.default_rng(2).random((1, S))
    V3 = np.random.default_rng(2).random((3, S))
    f2t = f.reshape(S * A, S).T
    for name, fn in (("one backward step, 1 right-hand side: V @ f.reshape(SA,S).T", lambda: V1 @ f2t),
                     ("one backward step, 3 right-hand sides (soft Q + 2 best responses)", lambda: V3 @ f2t)):
        t = best_time(fn, args.repeats)
        out.append((size, label, name, fmt_time(t), f"{t / floor:.2f}"))
    t_proto = best_time(proto_update, args.repeats)
    t_fused = best_time(fused_update, args.repeats)
    t_lib = best_time(lambda: agent.learn(1), args.repeats)
    out.append((size, label, "recorded OMPO update: library learn(1)", fmt_time(t_lib),
                f"{t_lib / floor:.2f}"))
    out.append((size, label, "recorded OMPO update: prototype (same arithmetic)", fmt_time(t_proto),
                f"{t_proto / floor:.2f}"))
    out.append((size, label, "recorded OMPO update: prototype + one fused backward pass", fmt_time(t_fused),
                f"{t_fused / floor:.2f}"))
    if args.cprofile:
        prof = cProfile.Profile()
        prof.enable()
        agent.learn(args.cprofile)
        prof.disable()
        print(f"# cProfile of {args.cprofile} occupancy-form updates, ({size}), {label}")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(8)


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="100x10x10,1000x10x20", help="comma-separated SxAxH")
    p.add_argument("--k", type=int, default=16, help="features of the feature preference")
    p.add_argument("--repeats", type=int, default=7, help="timings per measurement (best kept)")
    p.add_argument("--dense-min-free-gb", type=float, default=8.0,
                   help="build a dense preference of 8 (SA)^2 bytes >= 100 MB only with this much "
                        "available memory")
    p.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS threads in this process")
    p.add_argument("--profile", action="store_true", help="add the breakdown and prototype timings")
    p.add_argument("--cprofile", type=int, default=0, metavar="N",
                   help="with --profile, also print cProfile of N updates per game")
    args = p.parse_args(argv)
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",") if s]

    with blas_threads(args.blas_threads) as before:
        print(f"# prefgym Markov-game benchmark  ({' '.join(sys.argv)})")
        print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
              f"{platform.machine()}; OpenBLAS threads set to {args.blas_threads} "
              f"(was {before if before is not None else 'unknown: symbol not found'}); float64; "
              f"best of {args.repeats}")
        print()
        rows: list = []
        profile_rows: list = []
        for S, A, H in sizes:
            for kind in ("dense", "features"):
                need = 8 * (S * A) ** 2 / 2**30
                if kind == "dense" and need >= 0.1 and available_gb() < args.dense_min_free_gb:
                    rows.append((f"{S}, {A}, {H}", "dense (SA)^2", "skipped", "", "", "",
                                 f"needs {need:.2g} GB x ~5 at peak; MemAvailable {available_gb():.1f} GB "
                                 f"< --dense-min-free-gb {args.dense_min_free_gb:g}"))
                    continue
                measure(S, A, H, kind, args, rows, profile_rows)
                gc.collect()  # free a dense preference before the next game
        print(table(("S, A, H", "step preference", "measurement", "time", "x floor", "min passes", "notes"),
                    rows))
        print(f"\npeak resident memory of this process: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
        if profile_rows:
            print("\n## where the time goes (per call; x floor = multiple of H passes over f)\n")
            print(table(("S, A, H", "step preference", "piece", "time", "x floor"), profile_rows))


if __name__ == "__main__":
    main()
