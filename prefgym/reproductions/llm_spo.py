"""SPO's Theorem 1 on a real LM (issue #5, item 4): self-play SPO drives pi to Softmax(r / alpha).

Setting. The tiny GPT-2 of ``llm-menu`` (2 layers, width 64, random init) answers each of
4 prompts with one of 5 fixed responses (all 4 tokens + EOS), its policy being the
softmax of their sequence log-probs (:class:`~prefgym.agents.llm.menu.MenuPolicy`). The
judge is Bradley-Terry with known rewards ``r = (1, 0.5, 0, -0.5, -1)`` on the five
responses (:class:`~prefgym.judges.TableJudge`, temperature 1).

Training (:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` with the ``spo``
algorithm, ``gamma = 0``, ``beta = 0``: Theorem 1's setting, no KL term): at every
iteration the pairs come from the policy itself and are labelled by the judge, which
is a BT-consistent, full-support pair distribution while ``pi_t`` has full support, so
003 Thms 1-2 put the unique fixed point at ``Softmax(r / alpha)``. Two variants:

* ``exact``: every ordered pair of the menu, weighted ``pi_t(y_i) pi_t(y_j)`` and by the
  judge's probability of the label (the exact expectation of self-play sampling);
* ``sampled``: 4 responses drawn from ``pi_t`` per prompt, all their pairs, soft labels.

The same optimiser as ``llm-menu`` (AdamW, lr 1e-3, 4 steps per iteration, gradient
clipping at 1), 300 iterations, ``alpha`` in ``{0.5, 1, 2}``, each from the same initial
model. Reported: ``KL(Softmax(r / alpha) || pi)`` (mean and max over prompts) before and
after, the entropy, and the KL of each trained policy to every alpha's target.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np

from prefgym.plotting import plot_curves
from prefgym.reproductions.analysis import fmt, verdict
from prefgym.reproductions.llm_menu import MODEL, OPTIM, PROMPTS, SEED
from prefgym.reproductions.registry import Reproduction, as_progress

__all__ = ["REPRODUCTION", "run", "RESPONSES", "REWARDS", "ALPHAS", "target"]

RESPONSES = ("goodbye!", "you are welcome.", "hello there.", "I am fine.", "sure.")
REWARDS = (1.0, 0.5, 0.0, -0.5, -1.0)
ALPHAS = (0.5, 1.0, 2.0)
VARIANTS = {"exact": {"exact": True}, "sampled": {"exact": False, "num_samples": 4}}
SIZES = {False: {"iterations": 300}, True: {"iterations": 3}}


def target(alpha: float) -> np.ndarray:
    """``Softmax(r / alpha)`` (003 Thm 1)."""
    z = np.asarray(REWARDS) / alpha
    e = np.exp(z - z.max())
    return e / e.sum()


def _train(model, tok, judge, alpha, variant, T, progress):
    import torch

    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.agents.llm.trainer import SPOTrainer
    from prefgym.evaluation import menu_evaluator
    from prefgym.llm.policy import LMPolicy

    menu = MenuPolicy(LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model)), RESPONSES)
    ev = menu_evaluator(menu, judge, PROMPTS, target=target(alpha), record_probs=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = SPOTrainer(menu, judge, PROMPTS, alpha=alpha, gamma=0.0, beta=0.0, labels="soft",
                             evaluator=ev, seed=SEED, **OPTIM, **VARIANTS[variant])
        trainer.learn(T, progress_bar=False)
    finally:
        torch.set_num_threads(threads)
    progress.update(label=f"spo {variant} alpha={alpha:g}")
    m = trainer.metrics
    B, N = len(PROMPTS), len(RESPONSES)
    final = np.array([[m[f"p{b}_{i}"][-1] for i in range(N)] for b in range(B)])
    init = np.array([[trainer.initial_metrics[f"p{b}_{i}"] for i in range(N)] for b in range(B)])
    return {"kl": m["kl_target_mean"], "kl_max": m["kl_target_max"], "initial_kl": trainer.initial_metrics[
        "kl_target_mean"], "initial_kl_max": trainer.initial_metrics["kl_target_max"], "final_probs": final,
        "initial_probs": init, "time_s": float(np.sum(m["time_s"]))}


def run(out_dir: Path, quick: bool = False, progress: bool = True) -> dict:
    """Train SPO at every alpha and variant; see the module docstring."""
    from prefgym.evaluation import entropy, kl_divergence
    from prefgym.judges import TableJudge
    from prefgym.llm.tiny import tiny_lm

    T = SIZES[bool(quick)]["iterations"]
    progress = as_progress(progress, "llm-spo")
    progress.total = len(VARIANTS) * len(ALPHAS)
    judge = TableJudge(dict(zip(RESPONSES, REWARDS, strict=True)), temperature=1.0)
    model, tok = tiny_lm(**MODEL)
    runs = {(a, v): _train(model, tok, judge, a, v, T, progress) for v in VARIANTS for a in ALPHAS}
    targets = {a: target(a) for a in ALPHAS}
    rows: dict[str, dict] = {}
    for (a, v), r in runs.items():
        rows[f"{v}_alpha{a:g}"] = {
            "alpha": a, "variant": v, "kl_before": r["initial_kl"], "kl_after": float(r["kl"][-1]),
            "kl_before_max": r["initial_kl_max"], "kl_after_max": float(r["kl_max"][-1]),
            "ratio": float(r["kl"][-1] / r["initial_kl"]),
            "kl_last10pct_median": float(np.median(r["kl"][-max(1, T // 10):])),
            "kl_last10pct_max": float(np.max(r["kl"][-max(1, T // 10):])),
            "entropy_after": float(entropy(r["final_probs"]).mean()),
            "entropy_target": float(entropy(targets[a])),
            "kl_to_each_target": {f"{b:g}": float(kl_divergence(targets[b], r["final_probs"]).mean())
                                  for b in ALPHAS},
            "final_probs_mean_over_prompts": r["final_probs"].mean(0), "target": targets[a],
            "time_s": r["time_s"]}
    summary = {
        "settings": {"model": MODEL, "responses": RESPONSES, "rewards": REWARDS, "bt_temperature": 1.0,
                     "prompts": PROMPTS, "alphas": ALPHAS, "variants": VARIANTS, "iterations": T,
                     "optimizer": OPTIM, "gamma": 0.0, "beta": 0.0, "labels": "soft", "seed": SEED},
        "initial_probs": runs[(ALPHAS[0], "exact")]["initial_probs"],
        "runs": rows,
    }
    summary["verdicts"] = _verdicts(rows)
    summary["files"] = _write_outputs(out_dir, runs, T)
    return summary


def _verdicts(rows: dict) -> dict[str, str]:
    out = {}
    ok = all(r["kl_after"] <= 0.1 * r["kl_before"] for r in rows.values())
    claim = "Self-play SPO drives KL(Softmax(r/alpha) || pi) down by >= 10x at every alpha (003 Thm 1)"
    out[claim] = verdict(
        ok, "; ".join(f"{k}: {fmt(r['kl_before'])} -> {fmt(r['kl_after'])} (max over prompts "
                      f"{fmt(r['kl_after_max'])})" for k, r in rows.items()))
    exact = {k: r for k, r in rows.items() if r["variant"] == "exact"}
    own = all(min(r["kl_to_each_target"], key=r["kl_to_each_target"].get) == f"{r['alpha']:g}"
              for r in exact.values())
    out["Each trained policy is closest to its own alpha's Softmax(r/alpha) (exact pairs)"] = verdict(
        own, "; ".join(f"alpha={r['alpha']:g}: KL to targets "
                       + ", ".join(f"{b}: {fmt(v)}" for b, v in r["kl_to_each_target"].items())
                       for r in exact.values()))
    ents = [exact[k]["entropy_after"] for k in sorted(exact, key=lambda k: exact[k]["alpha"])]
    out["The trained entropy grows with alpha (softness controls entropy, 003 Sec. 6)"] = verdict(
        bool(np.all(np.diff(ents) > 0)),
        ", ".join(f"alpha={r['alpha']:g}: H = {fmt(r['entropy_after'])} (target {fmt(r['entropy_target'])})"
                  for r in exact.values()) + " (exact pairs)")
    return out


def _write_outputs(out_dir: Path, runs, T) -> list[str]:
    curves, styles = {}, {}
    colors = dict(zip(ALPHAS, ("tab:blue", "tab:orange", "tab:green"), strict=False))
    for (a, v), r in runs.items():
        lab = f"alpha={a:g}, {v}"
        curves[lab] = np.concatenate([[r["initial_kl"]], r["kl"]])
        styles[lab] = {"color": colors[a], "linestyle": "-" if v == "exact" else ":"}
    fig = plot_curves(curves, out_dir / "llm_spo_kl.png", styles=styles,
                      xlabel="iteration (1 = initial model)",
                      ylabel="KL(Softmax(r/alpha) || pi), mean over prompts",
                      title="SPO on a tiny GPT-2 menu policy: distance to Softmax(r/alpha)", floor=1e-8)
    path = out_dir / "llm_spo_curves.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        keys = list(curves)
        w.writerow(["iteration", *(f"kl_{k.replace('=', '').replace(', ', '_')}" for k in keys)])
        for t in range(T + 1):
            w.writerow([t, *(f"{curves[k][t]:.6e}" for k in keys)])
    probs = out_dir / "llm_spo_final_probs.csv"
    with open(probs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["alpha", "variant", "prompt", *RESPONSES])
        for a in ALPHAS:
            w.writerow([a, "target", "", *(f"{p:.6f}" for p in target(a))])
        for (a, v), r in runs.items():
            for b, row in enumerate(r["final_probs"]):
                w.writerow([a, v, b, *(f"{p:.6f}" for p in row)])
    return [str(fig), str(path), str(probs)]


REPRODUCTION = Reproduction(
    name="llm-spo",
    description=("SPO Theorem 1 on a tiny GPT-2 menu policy: under a Bradley-Terry judge, self-play SPO "
                 "drives the response distribution to Softmax(r / alpha) for alpha in {0.5, 1, 2}"),
    runner=run,
)
