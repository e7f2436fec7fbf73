"""The menu game on a real LM: 002's neural experiment with a transformer policy.

Setting. A tiny GPT-2 (:func:`~prefgym.llm.tiny.tiny_lm`, 2 layers, width 64, random
init) answers each of 4 prompts with one of 3 fixed responses; its policy is the softmax
of the responses' sequence log-probs (:class:`~prefgym.agents.llm.menu.MenuPolicy`; all
three responses are 4 tokens + EOS, so the random LM starts near uniform). The judge is
a :class:`~prefgym.judges.TableJudge` over the responses with the preference matrix of
``planted_nash(3, rank=1, seed=s)`` (002 Algorithm 1), non-transitive with a unique,
known Nash equilibrium; ``s`` is the first seed whose equilibrium puts at least 0.1 on
every response (a rule on the game alone, fixed before any run: 002 reports that
convergence slows as ``min pi*`` shrinks). Every response is enumerated, so win rates
and the duality gap ``2 max_y P(y > pi) - 1`` of the LM's response distribution are
exact at every iteration.

Algorithms (:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer`, exact menu mode, the
same optimiser for all: AdamW, lr 1e-3, 4 steps per iteration (000's ``m``), gradient
clipping at 1; 1000 iterations):

* OMWU-neural (002 Sec. 5.2): generalised IPO on all response pairs, base ``pi_t``;
* MPO, 000 Alg. 1 as printed (opponent = magnet, annealed ``eta``, magnet refresh);
* MPO with the current iterate as opponent (000 Eq. 4 + refresh; the tabular MPO);
* iterative DPO on the best-vs-worst pair by exact win rate against ``pi_t``,
  reference = ``pi_t`` (refreshed every iteration), at two ``beta``.

Hyper-parameters. OMWU's ``eta`` and MPO's ``(alpha, T_k)`` are selected, before any
neural run, on the *exact tabular* dynamics of the same rule from the LM's initial
response distributions, with 002 App. D.3's rule (most prompts whose final gap is below
1e-3, then the smallest mean log10 gap). DPO has no tabular closed form: both betas are
run and reported. The tabular curves of the selected settings are drawn dashed next to
the neural ones; ``step_kl`` is ``KL(exact rule step || pi_{t+1})`` at each iteration, how
closely 4 optimiser steps realise the rule.

Post hoc. The first full run selected ``eta = 4`` for OMWU (the fastest exact rule) and
the neural OMWU did not converge (4 AdamW steps realise only part of each step). The
reproduction therefore also runs OMWU-neural at every other ``eta`` of the grid with the
same optimiser and reports it (``omwu_eta_sweep_post_hoc``, ``llm_menu_omwu_eta.png``);
no verdict uses it.

Post hoc, changed protocol (second session). Diagnosis of the eta = 4 failure, measured:
the loss and the trainer implement 002 Sec. 5.2 as reconstructed (uniform ``rho = mu``
over the menu, base ``sg log pi_t``, target ``eta (2 P(. > pi_t) - P(. > pi_{t-1}))`` with
``pi_{t-1}`` the frozen previous iterate, the same ``eta`` as the tabular rule;
``tests/test_llm_omwu_neural.py``). The exact rule converges at eta = 4 (and 4.5) from the
LM's start and from 2000 random starts, but not at eta >= 5 (gap ~0.1-0.2 after 1000
steps): eta = 4 is near its stability edge on this game. Four AdamW steps leave ~40% of
the iteration's regression loss (median) and realise a fraction ``c`` of the exact step
(the projection of the realised log-policy change on the exact one) with quantiles
5/50/95% = 0.10 / 1.15 / 2.2 (first 300 iterations): 27% of the (prompt, iteration)
steps overshoot by more than 1.5x, an effective eta > 6. The tabular rule with ``c``
resampled from these values ends at a gap of 0.30-0.37 (5 seeds; the neural run: 0.345),
with ``c ~ U[0.5, 1]`` (undershoot only) it converges, with ``c ~ U[1, 1.5]`` it does not
(0.13). So the failure is the inner solve overshooting past the stability edge, not a
loss bug and not undershooting. The arm ``omwu_solved`` therefore keeps eta = 4, the
optimiser and the seed and solves each iteration until ``KL(exact step || pi_{t+1}) <=
5e-9`` (``SOLVE``; Pinsker: ``||pi_{t+1} - step||_1 <= 1e-4 = 0.1 x`` the convergence
threshold), with at least 4 and at most 64 AdamW steps (the trainer's ``step_kl_tol``,
the same for every algorithm with a closed-form step; off by default). Its verdict is
reported apart (``omwu_solved_post_hoc``); the pre-registered verdicts are unchanged.
Result (1000 iterations): gap 0.146 -> 9.2e-5 over the last 10% (max over prompts at the
end 1.8e-4; first below 1e-3 at iteration 32), 20.5 steps per iteration on average (64
iterations at the cap: 1-39, 43 and 24 isolated later ones), 160 s against 76 s for the
4-step arm. The floor
near 1e-4 is the tolerance's, the exact rule reaches 1e-16.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np

from prefgym.algorithms.rules import log_normalize, magnetic_step, optimistic_step
from prefgym.data.menus import MENU_GAME_MIN_NE_PROB, MENU_GAME_RANK, MENU_PROMPTS, MENU_RESPONSES
from prefgym.data.menus import planted_menu_game as choose_game
from prefgym.games.matrix import MatrixGame
from prefgym.plotting import plot_curves, plot_simplex_trajectories
from prefgym.reproductions.analysis import fmt, select_learning_rate, verdict
from prefgym.reproductions.registry import Reproduction, as_progress

__all__ = ["REPRODUCTION", "run", "choose_game", "tabular_gaps", "RESPONSES", "PROMPTS"]

MODEL = {"arch": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2, "seed": 0}
RESPONSES, PROMPTS = MENU_RESPONSES, MENU_PROMPTS
N_RESPONSES, RANK, XI_MIN = len(RESPONSES), MENU_GAME_RANK, MENU_GAME_MIN_NE_PROB
OMWU_ETAS = (0.5, 1.0, 2.0, 4.0)
MPO_ALPHAS, MPO_PERIODS, MPO_ETA = (0.05, 0.1, 0.2), (10, 25, 50, 100), 1.0
DPO_BETAS = (0.1, 1.0)
OPTIM = {"optimizer": "adamw", "learning_rate": 1e-3, "steps_per_iteration": 4, "max_grad_norm": 1.0}
SIZES = {False: {"iterations": 1000}, True: {"iterations": 6}}
CONVERGED = 1e-3
SEED = 0
# post hoc, changed protocol (module docstring): each OMWU iteration solved until KL(exact step || pi_{t+1})
# <= STEP_KL_TOL, i.e. ||pi_{t+1} - step||_1 <= sqrt(2 tol) = 1e-4 = 0.1 x CONVERGED (Pinsker), at least
# OPTIM's 4 and at most 64 AdamW steps (the trainer's default cap, 16 x 4)
SOLVE = {"step_kl_tol": 0.5 * (0.1 * CONVERGED) ** 2, "max_steps_per_iteration": 64}


def tabular_gaps(game: MatrixGame, pi0: np.ndarray, T: int, rule: str, **hp) -> tuple[np.ndarray, np.ndarray]:
    """Exact tabular dynamics of a rule from each row of ``pi0`` (B, N): gaps (T, B) and policies (T, B, N).

    ``rule``: ``"omwu"`` (``eta``; the first step uses ``g_{-1} = g_0`` as the neural
    trainer does), ``"mpo"`` (``alpha``, ``period``, ``eta``, ``opponent`` in
    ``{"magnet", "current"}``; ``eta`` annealed per period and the magnet refreshed after
    every ``period`` iterations, as :class:`~prefgym.agents.llm.algorithms.MPOAlgorithm`).
    Entry ``t`` is the policy after iteration ``t + 1``.
    """
    logits = np.log(pi0)
    pis, gaps = np.empty((T, *pi0.shape)), np.empty((T, pi0.shape[0]))
    prev = game.payoff_vector(pi0)
    magnet = logits.copy()
    for t in range(T):
        logp, pi = log_normalize(logits)
        if rule == "omwu":
            g = game.payoff_vector(pi)
            logits = optimistic_step(logp, g, prev, hp["eta"])
            prev = g
        elif rule == "mpo":
            period = int(hp["period"])
            eta = hp["eta"] * (1.0 - (t % period) / period)
            opp = np.exp(magnet) if hp["opponent"] == "magnet" else pi
            logits = log_normalize(magnetic_step(logp, game.payoff_vector(opp), eta, hp["alpha"], magnet))[0]
            if (t + 1) % period == 0:
                magnet = logits.copy()
        else:
            raise ValueError(f"unknown rule {rule!r}")
        pis[t] = log_normalize(logits)[1]
        gaps[t] = game.duality_gap(pis[t])
    return gaps, pis


def _fresh_menu(model, tok):
    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.llm.policy import LMPolicy

    lm = LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model))
    return MenuPolicy(lm, RESPONSES)


def _train(name, model, tok, judge, game, T, progress, **kw):
    import torch

    from prefgym.agents.llm.trainer import SelfPlayTrainer
    from prefgym.evaluation import menu_evaluator

    menu = _fresh_menu(model, tok)
    ev = menu_evaluator(menu, judge, PROMPTS, record_probs=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest and keeps the run deterministic
    try:
        trainer = SelfPlayTrainer(menu, judge, PROMPTS, evaluator=ev, seed=SEED, **OPTIM, **kw)
        trainer.learn(T, progress_bar=False)
    finally:
        torch.set_num_threads(threads)
    progress.update(label=name)
    m = trainer.metrics
    B = len(PROMPTS)
    probs = np.stack([np.stack([m[f"p{b}_{i}"] for i in range(N_RESPONSES)], -1) for b in range(B)], 1)
    p0 = np.array([[trainer.initial_metrics[f"p{b}_{i}"] for i in range(N_RESPONSES)] for b in range(B)])
    return {"name": name, "gap_mean": m["gap_mean"], "gap_max": m["gap_max"],
            "step_kl": m.get("step_kl"), "inner_steps": m.get("inner_steps"), "probs": probs,
            "initial_probs": p0,
            "initial_gap_mean": trainer.initial_metrics["gap_mean"],
            "win_rate_vs_initial": m["win_rate_vs_initial"], "time_s": float(np.sum(m["time_s"]))}


def run(out_dir: Path, quick: bool = False, progress: bool = True) -> dict:
    """Run the menu-game experiment; see the module docstring."""
    from prefgym.judges import TableJudge
    from prefgym.llm.tiny import tiny_lm

    T = SIZES[bool(quick)]["iterations"]
    progress = as_progress(progress, "llm-menu")
    game, game_seed, ne = choose_game()
    judge = TableJudge.from_preference(game.preference, list(RESPONSES))
    model, tok = tiny_lm(**MODEL)
    pi0 = _fresh_menu(model, tok).probs(list(PROMPTS))

    # ---- selection on the exact tabular dynamics (no neural run involved)
    omwu_tab = {eta: tabular_gaps(game, pi0, T, "omwu", eta=eta) for eta in OMWU_ETAS}
    omwu_eta, omwu_sweep = select_learning_rate({e: v[0] for e, v in omwu_tab.items()}, CONVERGED)
    mpo_sel, mpo_tab = {}, {}
    for opp in ("current", "magnet"):
        grid = {(a, p): tabular_gaps(game, pi0, T, "mpo", alpha=a, period=p, eta=MPO_ETA, opponent=opp)
                for a in MPO_ALPHAS for p in MPO_PERIODS}
        best, sweep = select_learning_rate({k: v[0] for k, v in grid.items()}, CONVERGED)
        mpo_sel[opp] = {"alpha": best[0], "refresh_every": best[1],
                        "sweep": {f"alpha={k[0]:g},T_k={k[1]}": v for k, v in sweep.items()}}
        mpo_tab[opp] = grid[best]

    # ---- neural runs
    runs = {"omwu": _train("omwu", model, tok, judge, game, T, progress, algorithm="omwu", eta=omwu_eta)}
    for opp in ("current", "magnet"):
        runs[f"mpo_{opp}"] = _train(f"mpo_{opp}", model, tok, judge, game, T, progress, algorithm="mpo",
                                    alpha=mpo_sel[opp]["alpha"], refresh_every=mpo_sel[opp]["refresh_every"],
                                    eta=MPO_ETA, opponent=opp)
    for beta in DPO_BETAS:
        runs[f"dpo_beta{beta:g}"] = _train(f"dpo_beta{beta:g}", model, tok, judge, game, T, progress,
                                           algorithm="dpo", beta=beta, reference="previous")
    # post hoc, changed protocol (added after the diagnosis of the eta = 4 failure; module docstring): the
    # pre-registered eta, same optimiser, each iteration's regression solved to a tolerance
    runs["omwu_solved"] = _train("omwu_solved", model, tok, judge, game, T, progress, algorithm="omwu",
                                 eta=omwu_eta, **SOLVE)
    # post hoc (added after the first full run, with eta = 4, failed): OMWU-neural at the other etas of the
    # grid, same optimiser; reported, not used by any verdict
    sweep = {eta: runs["omwu"] if eta == omwu_eta else
             _train(f"omwu_eta{eta:g}", model, tok, judge, game, T, progress, algorithm="omwu", eta=eta)
             for eta in OMWU_ETAS}
    tabular = {"omwu": omwu_tab[omwu_eta], "mpo_current": mpo_tab["current"], "mpo_magnet": mpo_tab["magnet"],
               "omwu_solved": omwu_tab[omwu_eta]}

    summary = {
        "settings": {"model": MODEL, "responses": RESPONSES, "prompts": PROMPTS, "iterations": T,
                     "game": f"planted_nash({N_RESPONSES}, rank={RANK}, seed={game_seed})",
                     "game_rule": f"first seed with min NE prob >= {XI_MIN}", "nash_equilibrium": ne,
                     "preference": game.preference, "optimizer": OPTIM, "mpo_eta": MPO_ETA,
                     "dpo_betas": DPO_BETAS, "seed": SEED, "selection_threshold": CONVERGED,
                     "omwu_solved_post_hoc": SOLVE},
        "initial_probs": pi0, "initial_gap": game.duality_gap(pi0),
        "selection": {"omwu_eta": omwu_eta, "omwu_sweep": omwu_sweep, "mpo": mpo_sel},
        "runs": {}, "runtime_neural_s": {k: r["time_s"] for k, r in runs.items()},
    }
    tail = max(1, T // 10)
    for name, r in runs.items():
        final_p = r["probs"][-1]
        row = {"initial_gap_mean": r["initial_gap_mean"], "final_gap_mean": float(r["gap_mean"][-1]),
               "final_gap_max": float(r["gap_max"][-1]), "tail_gap_mean": float(r["gap_mean"][-tail:].mean()),
               "min_gap_mean": float(r["gap_mean"].min()), "final_probs": final_p,
               "l1_to_ne_final": np.abs(final_p - ne).sum(-1),
               "win_rate_vs_initial_final": float(r["win_rate_vs_initial"][-1])}
        if r["step_kl"] is not None:
            row["step_kl_median"] = float(np.nanmedian(r["step_kl"]))
            row["step_kl_max"] = float(np.nanmax(r["step_kl"]))
        if r["inner_steps"] is not None:
            row["inner_steps_mean"] = float(np.mean(r["inner_steps"]))
            row["inner_steps_at_cap"] = float(np.mean(r["inner_steps"] >= SOLVE["max_steps_per_iteration"]))
        if name in tabular:
            tg = tabular[name][0].mean(axis=1)
            row["tabular_final_gap_mean"] = float(tg[-1])
            row["tabular_tail_gap_mean"] = float(tg[-tail:].mean())
        lead = r["probs"][:, 0].argmax(-1)
        row["leader_changes_prompt0"] = int((np.diff(lead) != 0).sum())
        row["leader_changes_prompt0_second_half"] = int((np.diff(lead[T // 2:]) != 0).sum())
        summary["runs"][name] = row
    summary["omwu_eta_sweep_post_hoc"] = {
        "note": ("added after the pre-registered run (eta selected on the tabular dynamics) failed; same "
                 "optimiser, not used by any verdict"),
        **{f"eta={eta:g}": {"initial_gap_mean": r["initial_gap_mean"],
                            "tail_gap_mean": float(r["gap_mean"][-tail:].mean()),
                            "final_gap_mean": float(r["gap_mean"][-1]),
                            "step_kl_median": float(np.nanmedian(r["step_kl"])),
                            "tabular_tail_gap_mean": float(omwu_tab[eta][0].mean(axis=1)[-tail:].mean()),
                            "time_s": r["time_s"]}
           for eta, r in sweep.items()}}
    summary["runtime_neural_s"].update({f"omwu_eta{e:g}": r["time_s"] for e, r in sweep.items()
                                        if e != omwu_eta})
    summary["verdicts"] = _verdicts(summary["runs"])
    summary["omwu_solved_post_hoc"] = {
        "note": ("changed protocol, added after the diagnosis of the pre-registered eta = 4 failure (4 AdamW "
                 "steps realise between ~5% and ~200% of each OMWU step, and eta = 4 is near the rule's "
                 "stability edge on this game: the exact rule at eta = 6 does not converge); "
                 "same eta, optimiser and seed, each iteration solved until KL(exact step || pi_t+1) <= "
                 f"{SOLVE['step_kl_tol']:g} (at least {OPTIM['steps_per_iteration']}, at most "
                 f"{SOLVE['max_steps_per_iteration']} steps); not part of the pre-registered verdicts"),
        "verdict": _post_hoc_verdict(summary["runs"])}
    summary["files"] = _write_outputs(out_dir, runs, tabular, ne, T, omwu_eta, mpo_sel)
    summary["files"].append(_sweep_figure(out_dir, sweep, omwu_tab))
    return summary


def _sweep_figure(out_dir: Path, sweep, omwu_tab) -> str:
    curves, styles = {}, {}
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    for (eta, r), c in zip(sweep.items(), colors, strict=False):
        curves[f"OMWU-neural eta={eta:g}"] = r["gap_mean"]
        styles[f"OMWU-neural eta={eta:g}"] = {"color": c}
        curves[f"exact rule eta={eta:g}"] = omwu_tab[eta][0].mean(axis=1)
        styles[f"exact rule eta={eta:g}"] = {"color": c, "linestyle": "--", "linewidth": 0.9}
    return str(plot_curves(curves, out_dir / "llm_menu_omwu_eta.png", styles=styles, xlabel="iteration",
                           ylabel="duality gap (mean over prompts)", floor=1e-8,
                           title="Post hoc: OMWU-neural at every eta of the grid (same optimiser)"))


def _verdicts(rows: dict) -> dict[str, str]:
    out = {}
    for name, claim in (("omwu", "OMWU-neural drives the last-iterate duality gap down (002 Sec. 5.2)"),
                        ("mpo_current", "MPO with the current iterate as opponent (000 Eq. 4 + magnet "
                                        "refresh) drives the last-iterate duality gap down"),
                        ("mpo_magnet", "MPO as printed in 000 Alg. 1 (opponent = magnet) drives the "
                                       "last-iterate duality gap down")):
        r = rows[name]
        ok = r["tail_gap_mean"] <= 0.1 * r["initial_gap_mean"]
        out[claim] = verdict(ok, f"mean gap over prompts {fmt(r['initial_gap_mean'])} at start, "
                                 f"{fmt(r['tail_gap_mean'])} averaged over the last 10% of iterations "
                                 f"(final {fmt(r['final_gap_mean'])}, max over prompts "
                                 f"{fmt(r['final_gap_max'])}); "
                                 f"exact tabular rule: {fmt(r['tabular_tail_gap_mean'])}; median step KL "
                                 f"{fmt(r['step_kl_median'])} (criterion: tail <= 0.1 x start)")
    parts, ok_all = [], True
    for name, r in rows.items():
        if not name.startswith("dpo"):
            continue
        collapse = bool((r["final_probs"].max(-1) >= 0.95).all())
        cycle = r["leader_changes_prompt0_second_half"] >= 2
        ok = r["tail_gap_mean"] >= 0.5 * r["initial_gap_mean"] and (collapse or cycle)
        ok_all &= ok
        kind = "collapsed" if collapse else ("cycles" if cycle else "neither")
        parts.append(f"{name}: tail gap {fmt(r['tail_gap_mean'])} vs start {fmt(r['initial_gap_mean'])}, "
                     f"{kind} (top-response prob {fmt(r['final_probs'].max(-1).min())}.."
                     f"{fmt(r['final_probs'].max(-1).max())}, "
                     f"{r['leader_changes_prompt0_second_half']} leader changes in the second half)")
    out["Iterative DPO on best-vs-worst pairs cycles or collapses (does not approach the NE)"] = verdict(
        ok_all, "; ".join(parts) + " (criteria: tail gap >= 0.5 x start, and every prompt's top response "
                                   ">= 0.95 or >= 2 changes of prompt 0's top response in the second half)")
    kls = {k: rows[k]["step_kl_median"] for k in ("omwu", "mpo_current", "mpo_magnet")}
    out["Four optimiser steps per iteration realise the exact tabular step (median KL < 1e-2)"] = verdict(
        all(v < 1e-2 for v in kls.values()),
        ", ".join(f"{k}: median KL(exact step || pi_t+1) {fmt(v)}" for k, v in kls.items()))
    return out


def _post_hoc_verdict(rows: dict) -> dict[str, str]:
    """Verdict of the changed-protocol OMWU arm (kept apart from the pre-registered ``verdicts``)."""
    r = rows["omwu_solved"]
    return {"Post hoc, changed protocol: OMWU-neural at the pre-registered eta with each iteration solved to "
            "step KL <= 5e-9 (4-64 AdamW steps) drives the last-iterate duality gap down": verdict(
        r["tail_gap_mean"] <= 0.1 * r["initial_gap_mean"],
        f"mean gap over prompts {fmt(r['initial_gap_mean'])} at start, {fmt(r['tail_gap_mean'])} averaged "
        f"over the last 10% of iterations (final {fmt(r['final_gap_mean'])}, max over prompts "
        f"{fmt(r['final_gap_max'])}); exact tabular rule: {fmt(r['tabular_tail_gap_mean'])}; median step KL "
        f"{fmt(r['step_kl_median'])}; {fmt(r['inner_steps_mean'])} AdamW steps per iteration on average, "
        f"{fmt(100 * r['inner_steps_at_cap'])}% of iterations at the cap of "
        f"{SOLVE['max_steps_per_iteration']} (criterion: tail <= 0.1 x start; added after the pre-registered "
        "arm failed, not pre-registered)")}


def _write_outputs(out_dir: Path, runs, tabular, ne, T, omwu_eta, mpo_sel) -> list[str]:
    labels = {"omwu": f"OMWU-neural (eta={omwu_eta:g})",
              "mpo_current": (f"MPO, opponent = current (alpha={mpo_sel['current']['alpha']:g}, "
                              f"T_k={mpo_sel['current']['refresh_every']})"),
              "mpo_magnet": (f"MPO Alg. 1, opponent = magnet (alpha={mpo_sel['magnet']['alpha']:g}, "
                             f"T_k={mpo_sel['magnet']['refresh_every']})"),
              "omwu_solved": f"post hoc: OMWU-neural (eta={omwu_eta:g}), solved to step KL <= 5e-9"}
    labels.update({k: f"iterative DPO (beta={k.split('beta')[1]})" for k in runs if k.startswith("dpo")})
    curves, styles = {}, {}
    colors = dict(zip(runs, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"),
                      strict=False))
    for name, r in runs.items():
        curves[labels[name]] = r["gap_mean"]
        styles[labels[name]] = {"color": colors[name]}
        if name in tabular:
            lab = f"{name}: exact tabular rule"
            curves[lab] = tabular[name][0].mean(axis=1)
            styles[lab] = {"color": colors[name], "linestyle": "--", "linewidth": 0.9}
    fig = plot_curves(curves, out_dir / "llm_menu_gap.png", styles=styles, xlabel="iteration",
                      ylabel="duality gap (mean over prompts)",
                      title="Menu game on a tiny GPT-2: last-iterate duality gap", floor=1e-8)
    short = {"omwu": f"OMWU eta={omwu_eta:g}", "mpo_current": "MPO, opp. = current",
             "mpo_magnet": "MPO Alg. 1, opp. = magnet", "omwu_solved": f"OMWU eta={omwu_eta:g}, solved"}
    short.update({k: f"DPO beta={k.split('beta')[1]}" for k in runs if k.startswith("dpo")})
    traj = {short[n]: np.vstack([r["initial_probs"][0], r["probs"][:, 0]]) for n, r in runs.items()}
    simplex = plot_simplex_trajectories(traj, out_dir / "llm_menu_simplex.png", equilibria={"NE": ne},
                                        title="Response distribution at prompt 0 (corners = the 3 responses)")
    path = out_dir / "llm_menu_curves.csv"
    cols = {"iteration": np.arange(1, T + 1)}
    for name, r in runs.items():
        cols[f"{name}_gap_mean"], cols[f"{name}_gap_max"] = r["gap_mean"], r["gap_max"]
        if r["step_kl"] is not None:
            cols[f"{name}_step_kl"] = r["step_kl"]
        if r["inner_steps"] is not None:
            cols[f"{name}_inner_steps"] = r["inner_steps"]
        cols[f"{name}_win_rate_vs_initial"] = r["win_rate_vs_initial"]
        for i in range(N_RESPONSES):
            cols[f"{name}_prompt0_p{i}"] = r["probs"][:, 0, i]
        if name in tabular:
            cols[f"{name}_tabular_gap_mean"] = tabular[name][0].mean(axis=1)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(cols))
        for t in range(T):
            w.writerow([int(cols["iteration"][t])] + [f"{float(v[t]):.6e}" for k, v in cols.items()
                                                        if k != "iteration"])
    return [str(fig), str(simplex), str(path)]


REPRODUCTION = Reproduction(
    name="llm-menu",
    description=("Menu game on a tiny GPT-2 (002's neural experiment on an LM): OMWU-neural and MPO drive "
                 "the exact last-iterate duality gap down; iterative DPO on best-vs-worst pairs does not"),
    runner=run,
)
