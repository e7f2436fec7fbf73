"""004's exact results: Examples 1-2 (A.3.3, Figure 9), tabular Algorithm 1 (Theorem 4.1), Lemma 4.1.

All NumPy (:mod:`prefgym.agents.tabular.aihf`), except the optimiser route of Example 1,
which drives the SAC agent's own estimator and optimiser
(:func:`~prefgym.agents.aihf_estimator.aihf_loss`, Adam) on one-hot data. A few seconds.

1. **Example 1** (``beta = 1``, two actions, true ``R(tau_1) = R(tau_2)``): variant (a)
   ``D = {50 x tau_1, 50 x tau_2}``, ``P = {6 x (1 > 2), 4 x (2 > 1)}``; variant (b)
   ``D = {6 x tau_1, 4 x tau_2}``, ``P = {50 x (1 > 2), 50 x (2 > 1)}``. For each: SFT
   (Eq. 12), the preference-only reward's policy (Eq. 32), RLHF (Eq. 33) and AIHF (Eq. 36),
   in closed form and by the optimiser.
2. **Example 2 / Figure 9**: 50 actions, ``R*(i) = N(i / 50; 0.5, 2)`` density, 2000
   demonstrations from ``pi*`` restricted to actions 1-45 (46-50 never demonstrated),
   200 BTL preferences for every pair; 100 repeats (seeds 0-99). SFT, RLHF, AIHF and the
   truth per action, and the mass each puts on the actions never demonstrated.
3. **Theorem 4.1**: Algorithm 1 (one soft policy-iteration step on exact soft policy
   evaluation per reward step, ``alpha = alpha_0 / sqrt(K)``, Eq. 19 on minibatches of 16
   expert trajectories, 16 agent trajectories, 16 pairs) on a random 6-state, 3-action
   KL-regularised MDP (``gamma = 0.7``, ``beta = 1``, 4 linear reward features, 200 pairs,
   ``|D| = 100``), for K in 10 ... 1000: the averages of Eq. (20a) and Eq. (20b).
4. **Lemma 4.1**: ``grad L_1`` from Eq. (18) (with the proof's ``1 / beta``) against central
   finite differences of ``L_1(theta) = E_{pi^E}[sum_t gamma^t log pi_theta]`` computed through
   exact soft policy iteration, at ``beta = 1`` and ``beta = 0.5``.

Verdicts (criteria fixed before running):

- (E1) AIHF's ``pi_1`` is ``56 / 110`` to 1e-6 in both variants, in closed form *and* by the optimiser;
- (E1') RLHF's ``pi_1`` is 0.6 to 1e-6 in both variants (closed form and optimiser), and
  SFT / preference-only are 0.5 / 0.6 (a) and 0.6 / 0.5 (b);
- (E2) SFT and RLHF put exactly zero mass on the never-demonstrated actions in every repeat,
  while AIHF's mean mass there is within 10% of the truth's, and AIHF's mean L1 distance to
  the truth is below both SFT's and RLHF's;
- (T4.1) both Theorem 4.1 averages decrease at every larger K, with fitted log-log slopes
  at most -0.4 (the theorem bounds both by ``O(K^{-1/2})`` at ``sigma = 1/2``);
- (L4.1) the Lemma 4.1 gradient matches finite differences to 1e-6 (max abs difference) at both ``beta``;
- (det) a second run of Alg. 1 and of Example 2 with the same seeds gives bit-identical numbers.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.agents.tabular.aihf import (
    aihf_static_policy,
    demo_log_likelihood,
    fit_static_by_optimiser,
    lemma41_gradient,
    preference_policy,
    random_aihf_problem,
    rlhf_policy,
    run_algorithm1,
    sft_policy,
)
from prefgym.reproductions.analysis import verdict
from prefgym.reproductions.registry import Reproduction

__all__ = ["EXAMPLE1", "REPRODUCTION", "algorithm1_job", "example1", "example2", "lemma41_check", "run",
           "theorem41_curve"]

#: Example 1's two variants: demonstration counts and preference wins ``W[i, j] = #(i > j)``
EXAMPLE1 = {
    "a": {"demo_counts": [50, 50], "pref_wins": [[0, 6], [4, 0]]},
    "b": {"demo_counts": [6, 4], "pref_wins": [[0, 50], [50, 0]]},
}
AIHF_TARGET = 56 / 110


# ------------------------------------------------------------------ Example 1
def example1(optimiser_steps: int = 3000) -> dict[str, dict[str, Any]]:
    """Both variants: ``pi_1`` of SFT, preference-only, RLHF, AIHF; closed form and optimiser."""
    out = {}
    for name, data in EXAMPLE1.items():
        d, w = data["demo_counts"], data["pref_wins"]
        closed = {
            "sft": sft_policy(d)[0],
            "preference_only": preference_policy(w)[0],
            "rlhf": rlhf_policy(d, w)[0],
            "aihf": aihf_static_policy(d, w)[0],
        }
        kw = {"steps": optimiser_steps, "lr": 0.05, "tol": 1e-12}
        p_sft = fit_static_by_optimiser(d, w, use_pref=False, **kw)[0]
        p_pref = fit_static_by_optimiser(d, w, use_demo=False, **kw)[0]
        q = p_sft * p_pref  # RLHF (Eq. 33) from the two fitted rewards
        p_aihf, trace = fit_static_by_optimiser(d, w, **kw)
        opt = {"sft": p_sft[0], "preference_only": p_pref[0], "rlhf": q[0] / q.sum(), "aihf": p_aihf[0]}
        out[name] = {
            "data": data,
            "closed_form": {k: float(v) for k, v in closed.items()},
            "optimiser": {k: float(v) for k, v in opt.items()},
            "optimiser_steps": len(trace),
            "aihf_minus_56_over_110": {
                "closed_form": float(closed["aihf"] - AIHF_TARGET),
                "optimiser": float(opt["aihf"] - AIHF_TARGET),
            },
        }
    return out


# ------------------------------------------------------------------ Example 2
def example2(
    n_repeats: int = 100,
    n_actions: int = 50,
    n_covered: int = 45,
    n_demo: int = 2000,
    prefs_per_pair: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Figure 9: per-action policies (mean over repeats) and the mass on never-demonstrated actions."""
    i = np.arange(1, n_actions + 1)
    mu, sd = 0.5, 2.0
    r_true = np.exp(-((i / n_actions - mu) ** 2) / (2 * sd**2)) / (sd * np.sqrt(2 * np.pi))
    truth = np.exp(r_true) / np.exp(r_true).sum()
    covered = np.exp(r_true[:n_covered]) / np.exp(r_true[:n_covered]).sum()
    p_win = 1.0 / (1.0 + np.exp(-(r_true[:, None] - r_true[None, :])))
    upper = np.triu(np.ones((n_actions, n_actions), bool), 1)
    sft, rlhf, aihf, pref, demo = [], [], [], [], []
    for rep in range(n_repeats):
        rng = np.random.default_rng(seed + rep)
        d = np.zeros(n_actions)
        d[:n_covered] = rng.multinomial(n_demo, covered)
        wins_upper = rng.binomial(prefs_per_pair, p_win[upper])
        w = np.zeros((n_actions, n_actions))
        w[upper] = wins_upper
        w.T[upper] = prefs_per_pair - wins_upper
        demo.append(d)
        sft.append(sft_policy(d))
        rlhf.append(rlhf_policy(d, w))
        aihf.append(aihf_static_policy(d, w))
        pref.append(preference_policy(w))
    pols = {
        "sft": np.array(sft),
        "rlhf": np.array(rlhf),
        "aihf": np.array(aihf),
        "preference_only": np.array(pref),
    }
    never = np.array(demo) == 0  # (repeats, actions): actions not demonstrated in that repeat
    mass = {k: (p * never).sum(1) for k, p in pols.items()}
    l1 = {k: np.abs(p - truth).sum(1) for k, p in pols.items()}
    return {
        "truth": truth,
        "mean_policy": {k: p.mean(0) for k, p in pols.items()},
        "std_policy": {k: p.std(0) for k, p in pols.items()},
        "never_demonstrated_actions_per_repeat": never.sum(1),
        "truth_mass_on_never_demonstrated": float((truth * never).sum(1).mean()),
        "mass_on_never_demonstrated": {
            k: {"mean": float(v.mean()), "std": float(v.std()), "max": float(v.max())}
            for k, v in mass.items()
        },
        "l1_to_truth": {k: {"mean": float(v.mean()), "std": float(v.std())} for k, v in l1.items()},
        "settings": {
            "n_repeats": n_repeats,
            "n_actions": n_actions,
            "covered": f"1..{n_covered}",
            "n_demo": n_demo,
            "prefs_per_pair": prefs_per_pair,
            "seeds": f"{seed}..{seed + n_repeats - 1}",
        },
    }


# ------------------------------------------------------------------ Theorem 4.1 and Lemma 4.1
def algorithm1_job(job: dict) -> dict:
    """One run of the Theorem 4.1 sweep (a picklable executor job): ``{"K", "seed", "alpha0", "batch"}``."""
    problem = random_aihf_problem(seed=job["seed"])
    r = run_algorithm1(problem, int(job["K"]), alpha0=job["alpha0"], batch=job["batch"], seed=job["seed"])
    return {"K": r.K, "seed": job["seed"], "policy_gap": r.policy_gap, "grad_norm_sq": r.grad_norm_sq,
            "objective": r.objective, "theta": r.theta.tolist()}


def theorem41_curve(Ks=(10, 30, 100, 300, 1000), alpha0: float = 1.0, batch: int | None = 16,
                    seed: int = 0, executor=None) -> dict[str, Any]:
    """Algorithm 1 for each K on :func:`~prefgym.agents.tabular.aihf.random_aihf_problem` (seed ``seed``).

    ``executor``: a :class:`~prefgym.reproductions.executor.Executor` for the runs (default: in process).
    """
    from prefgym.reproductions.executor import LocalExecutor

    problem = random_aihf_problem(seed=seed)
    jobs = [{"K": int(K), "seed": seed, "alpha0": alpha0, "batch": batch} for K in Ks]
    rows = (executor or LocalExecutor(1)).run(algorithm1_job, jobs)
    K = np.array([r["K"] for r in rows], float)
    gap = np.array([r["policy_gap"] for r in rows])
    grad = np.array([r["grad_norm_sq"] for r in rows])
    return {
        "K": K.astype(int),
        "policy_gap": gap,
        "grad_norm_sq": grad,
        "objective": np.array([r["objective"] for r in rows]),
        "objective_at_true_theta": problem.objective(problem.theta_true),
        "slope_policy_gap": float(np.polyfit(np.log(K), np.log(gap), 1)[0]),
        "slope_grad_norm_sq": float(np.polyfit(np.log(K), np.log(grad), 1)[0]),
        "settings": {
            "n_states": problem.mdp.n_states,
            "n_actions": problem.mdp.n_actions,
            "n_features": problem.features.shape[-1],
            "gamma": problem.mdp.gamma,
            "beta": problem.mdp.beta,
            "n_demo": problem.n_demo,
            "n_pref": len(problem.pref_feat_w),
            "weights": problem.weights,
            "alpha0": alpha0,
            "batch": batch,
            "seed": seed,
        },
    }


def lemma41_check(betas=(1.0, 0.5), h: float = 1e-5, seed: int = 0) -> dict[str, float]:
    """Max abs difference between Eq. (18) and central finite differences of ``L_1``, per ``beta``."""
    problem = random_aihf_problem(seed=seed)
    mdp, feats, occ = problem.mdp, problem.features, problem.expert_occupancy
    theta = np.random.default_rng(seed + 1).normal(size=feats.shape[-1])
    out = {}
    beta0 = mdp.beta
    try:
        for beta in betas:
            mdp.beta = float(beta)
            g = lemma41_gradient(mdp, feats, theta, occ)
            fd = np.array(
                [
                    (
                        demo_log_likelihood(mdp, feats, theta + h * e, occ)
                        - demo_log_likelihood(mdp, feats, theta - h * e, occ)
                    )
                    / (2 * h)
                    for e in np.eye(len(theta))
                ]
            )
            out[f"beta={beta:g}"] = {
                "max_abs_diff": float(np.abs(g - fd).max()),
                "grad_norm": float(np.linalg.norm(g)),
            }
    finally:
        mdp.beta = beta0
    return out


# ------------------------------------------------------------------ run
def run(out_dir: Path, quick: bool = False, progress: bool = True) -> dict:
    """All four parts, their verdicts, Figure 9 and the Theorem 4.1 curve (module docstring)."""
    out_dir = Path(out_dir)
    timings = {}
    t = time.perf_counter()
    ex1 = example1()
    timings["example1_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    n_rep = 20 if quick else 100
    ex2 = example2(n_repeats=n_rep)
    ex2_again = example2(n_repeats=n_rep)
    timings["example2_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    Ks = (10, 30, 100, 300) if quick else (10, 30, 100, 300, 1000)
    thm = theorem41_curve(Ks)
    thm_again = run_algorithm1(random_aihf_problem(seed=0), int(Ks[-1]), alpha0=1.0, batch=16, seed=0)
    timings["theorem41_s"] = round(time.perf_counter() - t, 2)
    lem = lemma41_check()

    verdicts = {}
    tol = 1e-6
    devs = {
        f"{v}/{route}": ex1[v]["aihf_minus_56_over_110"][route]
        for v in ex1
        for route in ("closed_form", "optimiser")
    }
    verdicts[
        "(E1) AIHF's pi_1 = 56/110 in Example 1, both variants, closed form and optimiser (004 A.3.3)"
    ] = verdict(
        all(abs(x) < tol for x in devs.values()),
        "pi_1 - 56/110: "
        + ", ".join(f"{k} {x:+.1e}" for k, x in devs.items())
        + f" (criterion: |.| < {tol})",
    )
    expect = {
        "a": {"sft": 0.5, "preference_only": 0.6, "rlhf": 0.6},
        "b": {"sft": 0.6, "preference_only": 0.5, "rlhf": 0.6},
    }
    errs = {
        f"{v}/{route}/{k}": ex1[v][route][k] - x
        for v, e in expect.items()
        for route in ("closed_form", "optimiser")
        for k, x in e.items()
    }
    verdicts[
        "(E1') RLHF's pi_1 = 0.6 in both variants; SFT / preference-only 0.5 / 0.6 (a), 0.6 / 0.5 (b)"
    ] = verdict(
        all(abs(x) < tol for x in errs.values()),
        "RLHF pi_1: "
        + ", ".join(
            f"{v} {ex1[v]['closed_form']['rlhf']:.6f} (optimiser {ex1[v]['optimiser']['rlhf']:.6f})"
            for v in ex1
        )
        + f"; largest deviation of the 12 values {max(abs(x) for x in errs.values()):.1e}"
        f" (criterion < {tol})",
    )
    m = ex2["mass_on_never_demonstrated"]
    truth_mass = ex2["truth_mass_on_never_demonstrated"]
    l1 = ex2["l1_to_truth"]
    held = (
        m["sft"]["max"] == 0.0
        and m["rlhf"]["max"] == 0.0
        and abs(m["aihf"]["mean"] - truth_mass) <= 0.1 * truth_mass
        and l1["aihf"]["mean"] < min(l1["sft"]["mean"], l1["rlhf"]["mean"])
    )
    verdicts["(E2) Figure 9: SFT and RLHF put no mass on never-demonstrated actions; AIHF recovers it"] = (
        verdict(
            held,
            f"mass on never-demonstrated actions over {n_rep} repeats: SFT max {m['sft']['max']:.3g}, "
            f"RLHF max {m['rlhf']['max']:.3g}, AIHF {m['aihf']['mean']:.4f} +- {m['aihf']['std']:.4f}, "
            f"truth {truth_mass:.4f}; L1 to truth: SFT {l1['sft']['mean']:.4f}, "
            f"RLHF {l1['rlhf']['mean']:.4f}, AIHF {l1['aihf']['mean']:.4f} "
            "(criteria: SFT = RLHF = 0; AIHF within 10% of truth; AIHF L1 smallest)",
        )
    )
    gap, grad = thm["policy_gap"], thm["grad_norm_sq"]
    mono = bool(np.all(np.diff(gap) < 0) and np.all(np.diff(grad) < 0))
    verdicts[
        "(T4.1) Alg. 1's averages (20a), (20b) shrink with K at rate K^{-1/2} or faster (Theorem 4.1)"
    ] = verdict(
        mono and thm["slope_policy_gap"] <= -0.4 and thm["slope_grad_norm_sq"] <= -0.4,
        f"K {[int(k) for k in thm['K']]}: (20a) {', '.join(f'{x:.2e}' for x in gap)} "
        f"(slope {thm['slope_policy_gap']:.2f}); "
        f"(20b) {', '.join(f'{x:.2e}' for x in grad)} (slope {thm['slope_grad_norm_sq']:.2f}) "
        "(criteria: decreasing in K, slopes <= -0.4)",
    )
    worst = max(v["max_abs_diff"] for v in lem.values())
    verdicts["(L4.1) Lemma 4.1's gradient equals finite differences of L_1"] = verdict(
        worst < 1e-6,
        ", ".join(
            f"{k}: max |Eq.18 - FD| {v['max_abs_diff']:.1e} (|grad| {v['grad_norm']:.2f})"
            for k, v in lem.items()
        )
        + " (criterion < 1e-6)",
    )
    same = (
        thm_again.grad_norm_sq == grad[-1]
        and thm_again.policy_gap == gap[-1]
        and np.array_equal(ex2["mean_policy"]["aihf"], ex2_again["mean_policy"]["aihf"])
    )
    verdicts["(det) the same seeds give bit-identical numbers on a rerun"] = verdict(
        bool(same),
        f"Alg. 1 at K={Ks[-1]} rerun: (20b) {thm_again.grad_norm_sq!r} vs {float(grad[-1])!r}; Example 2 "
        "mean AIHF policy rerun identical"
        if same
        else "a rerun differed",
    )

    summary: dict[str, Any] = {
        "example1_pi1": {
            v: {"closed_form": ex1[v]["closed_form"], "optimiser": ex1[v]["optimiser"]} for v in ex1
        },
        "example1_aihf_target": "56/110 = 0.509090909",
        "example1": ex1,
        "example2": ex2,
        "theorem41": thm,
        "lemma41": lem,
        "timings": timings,
        "verdicts": verdicts,
    }
    summary["files"] = _write_outputs(out_dir, ex1, ex2, thm)
    return summary


def _write_outputs(out_dir: Path, ex1, ex2, thm) -> list[str]:
    from prefgym.plotting import _pyplot

    plt = _pyplot()
    files = []
    # Figure 9
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = np.arange(1, len(ex2["truth"]) + 1)
    styles = {
        "sft": ("SFT", "tab:green", "s"),
        "rlhf": ("RLHF", "tab:blue", "^"),
        "aihf": ("AIHF", "tab:orange", "o"),
    }
    for k, (label, color, marker) in styles.items():
        ax.errorbar(
            x,
            ex2["mean_policy"][k],
            yerr=ex2["std_policy"][k],
            label=label,
            color=color,
            marker=marker,
            ms=3,
            lw=1,
            capsize=1.5,
        )
    ax.plot(x, ex2["truth"], color="black", lw=1.5, label="ground truth")
    cov = int(ex2["settings"]["covered"].split("..")[1])
    ax.axvline(cov + 0.5, color="red", ls=":", lw=1.5, label="demonstration coverage")
    ax.set_xlabel("action")
    ax.set_ylabel(f"probability (mean +- std, {ex2['settings']['n_repeats']} repeats)")
    ax.set_title("004 Figure 9: actions 46-50 are never demonstrated", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    p = out_dir / "aihf_examples_fig9.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    files.append(str(p))
    # Theorem 4.1
    fig, ax = plt.subplots(figsize=(6, 4.2))
    K = thm["K"]
    ax.loglog(
        K,
        thm["policy_gap"],
        "o-",
        label=r"(20a) $\frac{1}{K}\sum_k\|\log\pi_{k+1}-\log\pi_{\theta_k}\|_\infty$",
    )
    ax.loglog(K, thm["grad_norm_sq"], "s-", label=r"(20b) $\frac{1}{K}\sum_k\|\nabla L(\theta_k)\|^2$")
    ref = thm["grad_norm_sq"][0] * np.sqrt(K[0] / K)
    ax.loglog(K, ref, "k--", lw=1, label=r"$\propto K^{-1/2}$")
    ax.set_xlabel("K (iterations, step size alpha_0 / sqrt(K))")
    ax.set_title("004 Theorem 4.1 on a tabular KL-regularised MDP", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    p = out_dir / "aihf_examples_theorem41.png"
    fig.savefig(p, dpi=120)
    plt.close(fig)
    files.append(str(p))
    # CSVs
    p = out_dir / "aihf_examples_example1.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["variant", "route", "sft", "preference_only", "rlhf", "aihf"])
        for v, r in ex1.items():
            for route in ("closed_form", "optimiser"):
                w.writerow(
                    [v, route, *(f"{r[route][k]:.12f}" for k in ("sft", "preference_only", "rlhf", "aihf"))]
                )
    files.append(str(p))
    p = out_dir / "aihf_examples_fig9.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["action", "truth", "sft_mean", "rlhf_mean", "aihf_mean", "preference_only_mean"])
        for i in range(len(ex2["truth"])):
            w.writerow(
                [
                    i + 1,
                    f"{ex2['truth'][i]:.6f}",
                    *(f"{ex2['mean_policy'][k][i]:.6f}" for k in ("sft", "rlhf", "aihf", "preference_only")),
                ]
            )
    files.append(str(p))
    p = out_dir / "aihf_examples_theorem41.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["K", "policy_gap_20a", "grad_norm_sq_20b", "objective"])
        for i in range(len(K)):
            w.writerow(
                [
                    int(K[i]),
                    f"{thm['policy_gap'][i]:.6e}",
                    f"{thm['grad_norm_sq'][i]:.6e}",
                    f"{thm['objective'][i]:.6f}",
                ]
            )
    files.append(str(p))
    return files


REPRODUCTION = Reproduction(
    name="aihf-examples",
    description=(
        "004 exact results: Example 1 (56/110, RLHF 0.6), Example 2 / Figure 9, tabular Algorithm 1 "
        "(Theorem 4.1 rate), Lemma 4.1 gradient"
    ),
    runner=run,
)
