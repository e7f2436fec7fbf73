"""Interval verdicts and the three-task aggregate of the aihf-mujoco reproduction (004 Fig. 5 / Table 1).

Everything here reads finished runs (a ``summary.json`` per task, or the summary in memory)
and never trains, so existing task folders can be aggregated without rerunning them
(:func:`aggregate_folders`, ``scripts/aihf_mujoco_aggregate.py``).

Scores, fixed before the runs
-----------------------------
- *Final score of a run*: the mean of its last two evaluations, each the mean true return of
  ``eval_episodes`` deterministic episodes.
- *Normalised score* (task ``m``): ``(R - R_random) / (R_demonstrations - R_random)``, the
  Atari "human-normalised score" with the demonstrator in the human's place: 0 is the untrained
  policy, 1 the demonstration tier's mean episode return (004 Table 1's "demonstration" row).
  ``R_random`` is the mean step-0 return of the random-init learners (``aihf`` and ``irl``,
  every seed) of that task: measured by the same evaluation code on the same task, unlike a
  literature constant; ``R / R_demonstrations`` alone would not put HalfCheetah (negative
  returns near a random policy) and Hopper (about +100 for a policy that falls) on a common
  zero. The normalisation matters only for the IQM values: the probability of improvement
  compares runs within a task, so it (and every verdict (i)/(ii)) is the same under any
  increasing per-task transformation.

Verdicts, criteria fixed before the runs
----------------------------------------
Intervals are 95% stratified-bootstrap percentile intervals (:mod:`.rl_intervals`,
``reps`` samples, seeded): runs are redrawn within each task, the tasks stay fixed. Per task
the "tasks" are that one task; across tasks all of them (stratified over the tasks).

(i) AIHF beats RLHF, (ii) AIHF beats IRL-only: *held* when the interval of the probability
    of improvement ``P(AIHF > X)`` lies above 1/2, *did not hold* when it lies below 1/2,
    else *inconclusive*. (The rule on ``P(X > Y)`` is chosen over "the IQM difference's
    interval excludes 0" because it does not depend on the normalisation.)
(iii) RLHF does not improve on its BC initialisation: per RLHF run the gain
    ``(final - step-0 return) / (R_demonstrations - R_random)``; *held* when the interval of
    the gains' IQM lies below 0.1 (a tenth of the way from random to the demonstrations),
    *did not hold* when it lies above 0.1, else *inconclusive*.
(iv) data quality as in 004 Table 1: ``low < medium < high`` mean episode returns, in every
    task (no interval: the tiers are one dataset per task).

With fewer than :data:`MIN_RUNS` runs per method a bootstrap interval has no spread to speak
of (one run: a point), so (i)-(iii) are *inconclusive* whatever the numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.errors import InvalidArgumentError
from prefgym.fileio import atomic_write
from prefgym.reproductions.rl_intervals import (
    DEFAULT_REPS,
    improvement_interval,
    iqm_band,
    iqm_interval,
    judge,
)
from prefgym.serialization import json_default

__all__ = [
    "TASKS",
    "MIN_RUNS",
    "RLHF_GAIN_THRESHOLD",
    "task_scores",
    "interval_verdicts",
    "aggregate",
    "aggregate_folders",
    "load_summary",
]

#: the three tasks of 004 Fig. 5, in its order
TASKS = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
MODES = ("aihf", "rlhf", "irl")
LABELS = {"aihf": "AIHF (random init)", "rlhf": "RLHF (BC init, frozen BTL reward)",
          "irl": "IRL only (ML-IRL)"}
COLORS = {"aihf": "tab:orange", "rlhf": "tab:blue", "irl": "tab:purple"}
#: fewest runs per method for an interval verdict
MIN_RUNS = 3
#: (iii): RLHF's gain over its BC start, in normalised units, below which it "did not improve"
RLHF_GAIN_THRESHOLD = 0.1

CLAIMS = {
    "i": "(i) AIHF reaches a higher true return than RLHF with the same data (004 Fig. 5)",
    "ii": "(ii) AIHF reaches a higher true return than IRL-only (demonstrations alone)",
    "iii": "(iii) RLHF does not improve on its BC initialisation (004's reading of Fig. 5)",
    "iv": "(iv) data quality as in 004 Table 1: non-preferred < preferred < demonstrations",
}


# ------------------------------------------------------------------ one task's scores
def load_summary(folder: str | Path) -> dict:
    """The ``summary.json`` of a finished aihf-mujoco task folder (plain JSON, never executed)."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise InvalidArgumentError(f"folder {str(folder)!r} holds no summary.json; pass folders written by "
                                   "'prefgym reproduce aihf-mujoco'")
    summary = json.loads(path.read_text())
    if summary.get("reproduction", "aihf-mujoco") != "aihf-mujoco" or "runs" not in summary:
        raise InvalidArgumentError(f"{str(path)!r} is not an aihf-mujoco summary (no 'runs')")
    return summary


def task_scores(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Curves, final and normalised scores of one task's runs, per mode, runs sorted by seed.

    Returns ``env``, ``steps``, ``curves[mode]`` ``(evals, seeds)`` (mean return per evaluation),
    ``final[mode]`` ``(seeds,)``, ``normalised[mode]``, ``rlhf_gain`` (normalised, per RLHF run),
    ``random`` / ``demonstration`` (the normaliser), ``table`` (004 Table 1 rows) and
    ``rank_correlation[mode]`` (the learned reward's rank correlation with the true return).
    """
    runs = sorted(summary["runs"], key=lambda r: (r["mode"], r["seed"]))
    curves, rho = {}, {}
    steps = None
    for m in MODES:
        mine = [r for r in runs if r["mode"] == m]
        if not mine:
            raise InvalidArgumentError(f"summary has no {m!r} runs; aihf-mujoco summaries hold modes {MODES}")
        if all("returns" in r for r in mine):
            curves[m] = np.stack([np.mean(np.asarray(r["returns"], float), axis=1) for r in mine], axis=1)
            steps = np.asarray(mine[0]["steps"])
        else:  # older summaries keep only the per-seed mean curves
            curves[m] = np.asarray(summary["true_return"][m]["per_seed"], float).T
            steps = np.asarray(summary["true_return"][m]["steps"])
        rho[m] = np.asarray([r.get("reward_rank_correlation", np.nan) for r in mine], float)
    final = {m: c[-2:].mean(0) if c.shape[0] >= 2 else c[-1] for m, c in curves.items()}
    table = summary["data_quality"]
    demo = float(table["demonstration"]["mean_return"])
    random = float(np.concatenate([curves["aihf"][0], curves["irl"][0]]).mean())
    scale = demo - random
    if not scale > 0:
        raise InvalidArgumentError(f"demonstrations' mean return {demo:.1f} is not above the random-init "
                                   f"learners' {random:.1f}; the normalised score is undefined")
    return {
        "env": summary["settings"]["env"], "steps": steps, "curves": curves, "final": final,
        "normalised": {m: (f - random) / scale for m, f in final.items()},
        "rlhf_gain": (final["rlhf"] - curves["rlhf"][0]) / scale,
        "random": random, "demonstration": demo, "table": table, "rank_correlation": rho,
    }


# ------------------------------------------------------------------ verdicts
def _matrix(tasks: list[dict], key: str, mode: str | None = None) -> np.ndarray:
    """``(runs, tasks)`` of ``task[key][mode]`` (or ``task[key]``), the tasks as columns."""
    cols = [t[key][mode] if mode else t[key] for t in tasks]
    n = {len(c) for c in cols}
    if len(n) != 1:
        raise InvalidArgumentError(f"every task needs the same number of runs to stratify; got {sorted(n)}")
    return np.stack(cols, axis=1)


def interval_verdicts(tasks: list[dict], reps: int = DEFAULT_REPS, seed: int = 0
                      ) -> tuple[dict[str, str], dict[str, Any]]:
    """Verdicts (i)-(iv) over ``tasks`` (:func:`task_scores` of each) and the intervals they rest on."""
    names = [t["env"] for t in tasks]
    norm = {m: _matrix(tasks, "normalised", m) for m in MODES}
    raw = {m: _matrix(tasks, "final", m) for m in MODES}
    n_runs = norm["aihf"].shape[0]
    few = n_runs < MIN_RUNS
    iqm = {m: iqm_interval(norm[m], reps, seed=seed) for m in MODES}
    poi = {o: improvement_interval(norm["aihf"], norm[o], reps, seed=seed) for o in ("rlhf", "irl")}
    gain = iqm_interval(_matrix(tasks, "rlhf_gain"), reps, seed=seed)
    where = (f"95% stratified bootstrap, {n_runs} runs x {len(tasks)} task(s) "
             f"{', '.join(names)}, {reps} samples, seed {seed}")
    note = f"; only {n_runs} run(s) per method, fewer than {MIN_RUNS}: inconclusive by rule" if few else ""

    def raw_text(m: str) -> str:
        return " / ".join(f"{raw[m][:, j].mean():.0f} +- {raw[m][:, j].std():.0f}" for j in range(len(tasks)))

    v = {}
    for key, other in (("i", "rlhf"), ("ii", "irl")):
        status = "inconclusive" if few else judge(poi[other], 0.5)
        v[CLAIMS[key]] = (
            f"{status}: P(AIHF > {other.upper()}) = {poi[other]} ({where}); IQM normalised final return "
            f"AIHF {iqm['aihf']}, {other.upper()} {iqm[other]}; raw final mean +- std AIHF "
            f"{raw_text('aihf')}, "
            f"{other.upper()} {raw_text(other)} (criterion: held if the P interval lies above 1/2, did not "
            f"hold if below, else inconclusive{note})")
    starts = [float(t["curves"]["rlhf"][0].mean()) for t in tasks]
    status = "inconclusive" if few else {"held": "did not hold", "did not hold": "held"}.get(
        judge(gain, RLHF_GAIN_THRESHOLD), "inconclusive")
    v[CLAIMS["iii"]] = (
        f"{status}: IQM of RLHF's normalised gain over its BC start (final - step 0) = {gain} ({where}); "
        f"step 0 {' / '.join(f'{t0:.0f}' for t0 in starts)}, final "
        f"{raw_text('rlhf')} (criterion: held if the interval lies below {RLHF_GAIN_THRESHOLD}, did not hold "
        f"if above, else inconclusive{note})")
    tiers = [tuple(t["table"][k]["mean_return"] for k in ("non_prefer", "prefer", "demonstration"))
             for t in tasks]
    ordered = all(lo < me < hi for lo, me, hi in tiers)
    rows = "; ".join(f"{n} {lo:.1f} / {me:.1f} / {hi:.1f}"
                     for n, (lo, me, hi) in zip(names, tiers, strict=True))
    v[CLAIMS["iv"]] = (("held" if ordered else "did not hold")
                       + f": episode returns low / medium / high {rows} (004 Hopper: 2345 / 3025 / 3560)")
    numbers = {
        "tasks": names, "runs_per_method": int(n_runs), "reps": int(reps), "seed": int(seed),
        "iqm_normalised_final": {m: iqm[m].to_dict() for m in MODES},
        "probability_of_improvement": {f"aihf>{o}": poi[o].to_dict() for o in poi},
        "rlhf_gain_iqm": gain.to_dict(),
    }
    return v, numbers


# ------------------------------------------------------------------ several tasks
def aggregate(summaries: Iterable[Mapping[str, Any]], out_dir: str | Path | None = None,
              reps: int = DEFAULT_REPS, seed: int = 0) -> dict[str, Any]:
    """Per-task and across-task intervals and verdicts; with ``out_dir``, also the figures and tables.

    Files (``out_dir``): ``aihf_mujoco_tasks.png`` (one panel per task: IQM over seeds of the true
    return vs SAC steps with its bootstrap band, data tiers as horizontal lines),
    ``aihf_mujoco_intervals.png`` (IQM of the normalised final return per method, ``P(AIHF > RLHF)``,
    ``P(AIHF > IRL)``, with intervals), ``aihf_mujoco_aggregate.csv`` / ``.json`` (every number)
    and ``aihf_mujoco_table1.csv`` (004 Table 1 per task).
    """
    tasks = [task_scores(s) for s in summaries]
    if not tasks:
        raise InvalidArgumentError("aggregate needs at least one task summary")
    tasks.sort(key=lambda t: TASKS.index(t["env"]) if t["env"] in TASKS else len(TASKS))
    per_task = {}
    for t in tasks:
        verdicts, numbers = interval_verdicts([t], reps, seed)
        per_task[t["env"]] = {
            "verdicts": verdicts, **numbers,
            "normalisation": {"random": t["random"], "demonstration": t["demonstration"]},
            "final_true_return": {m: {"mean": float(t["final"][m].mean()), "std": float(t["final"][m].std()),
                                      "per_seed": t["final"][m]} for m in MODES},
            "reward_rank_correlation": {m: float(np.nanmean(t["rank_correlation"][m])) for m in MODES},
            "table1": {row: {k: t["table"][row][k] for k in ("mean_return", "std_return", "n")}
                       for row in ("non_prefer", "prefer", "demonstration")},
        }
    result: dict[str, Any] = {"tasks": per_task}
    if len(tasks) > 1:
        verdicts, numbers = interval_verdicts(tasks, reps, seed)
        result["all_tasks"] = {"verdicts": verdicts, **numbers}
        result["verdicts"] = verdicts
    else:
        result["verdicts"] = per_task[tasks[0]["env"]]["verdicts"]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result["files"] = _write_aggregate(out, tasks, result, reps, seed)
    return result


def aggregate_folders(folders: Iterable[str | Path], out_dir: str | Path, reps: int = DEFAULT_REPS,
                      seed: int = 0) -> dict[str, Any]:
    """:func:`aggregate` of finished task folders (each holding its ``summary.json``) into ``out_dir``."""
    summaries = [load_summary(f) for f in folders]
    envs = [s["settings"]["env"] for s in summaries]
    if len(set(envs)) != len(envs):
        raise InvalidArgumentError(f"each folder must hold a different task; got {envs}")
    result = aggregate(summaries, out_dir, reps, seed)
    result["folders"] = [str(f) for f in folders]
    with atomic_write(Path(out_dir) / "aihf_mujoco_aggregate.json", "w") as fh:
        json.dump(result, fh, indent=2, default=json_default)
    return result


# ------------------------------------------------------------------ files
def _write_aggregate(out: Path, tasks: list[dict], result: dict, reps: int, seed: int) -> list[str]:
    files = [_plot_tasks(out, tasks, min(reps, 2000), seed)]
    if "all_tasks" in result:
        files.append(_plot_intervals(out, result["all_tasks"]))
    rows = []
    scopes = [(env, r) for env, r in result["tasks"].items()]
    if "all_tasks" in result:
        scopes.append(("all", result["all_tasks"]))
    for scope, r in scopes:
        for m, iv in r["iqm_normalised_final"].items():
            rows.append([scope, "iqm_normalised_final", m, iv])
        for pair, iv in r["probability_of_improvement"].items():
            rows.append([scope, "probability_of_improvement", pair, iv])
        rows.append([scope, "rlhf_gain_iqm", "rlhf", r["rlhf_gain_iqm"]])
    csv_path = out / "aihf_mujoco_aggregate.csv"
    with atomic_write(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scope", "quantity", "method", "point", "low", "high", "confidence", "reps"])
        for scope, q, m, iv in rows:
            w.writerow([scope, q, m, f"{iv['point']:.4f}", f"{iv['low']:.4f}", f"{iv['high']:.4f}",
                        iv["confidence"], iv["reps"]])
    table_path = out / "aihf_mujoco_table1.csv"
    with atomic_write(table_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["env", "data", "mean_return", "std_return", "n"])
        for env, r in result["tasks"].items():
            for row, s in r["table1"].items():
                w.writerow([env, row, f"{s['mean_return']:.2f}", f"{s['std_return']:.2f}", s["n"]])
    json_path = out / "aihf_mujoco_aggregate.json"
    with atomic_write(json_path, "w") as fh:
        json.dump(result, fh, indent=2, default=json_default)
    return [*files, str(csv_path), str(table_path), str(json_path)]


def _plot_tasks(out: Path, tasks: list[dict], reps: int, seed: int) -> str:
    from prefgym.plotting import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 4.0), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        for m in MODES:
            mid, low, high = iqm_band(t["curves"][m].T, reps, seed=seed)
            ax.plot(t["steps"], mid, color=COLORS[m], lw=1.6, label=LABELS[m])
            ax.fill_between(t["steps"], low, high, color=COLORS[m], alpha=0.15, linewidth=0)
        for row, style in (("demonstration", "-"), ("prefer", "--"), ("non_prefer", ":")):
            ax.axhline(t["table"][row]["mean_return"], color="gray", lw=0.9, ls=style, label=f"data: {row}")
        ax.set_title(t["env"], fontsize=10)
        ax.set_xlabel("SAC environment steps")
        ax.grid(True, alpha=0.3)
    n = tasks[0]["curves"]["aihf"].shape[1]
    axes[0][0].set_ylabel(f"true return (IQM over {n} seeds, 95% bootstrap band)")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("004 Fig. 5 analogue: AIHF vs RLHF vs IRL-only", fontsize=11)
    fig.tight_layout()
    path = out / "aihf_mujoco_tasks.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def _plot_intervals(out: Path, agg: dict) -> str:
    from prefgym.plotting import _pyplot

    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.0, 2.8))
    for i, m in enumerate(MODES):
        iv = agg["iqm_normalised_final"][m]
        a.errorbar(iv["point"], i, xerr=[[iv["point"] - iv["low"]], [iv["high"] - iv["point"]]], fmt="o",
                   color=COLORS[m], capsize=4)
    a.set_yticks(range(len(MODES)), [LABELS[m] for m in MODES], fontsize=8)
    a.axvline(1.0, color="gray", lw=0.8, ls="-")
    a.axvline(0.0, color="gray", lw=0.8, ls=":")
    a.set_xlabel("IQM of normalised final return\n(0 = random init, 1 = demonstrations)", fontsize=8)
    pairs = list(agg["probability_of_improvement"])
    for i, pair in enumerate(pairs):
        iv = agg["probability_of_improvement"][pair]
        b.errorbar(iv["point"], i, xerr=[[iv["point"] - iv["low"]], [iv["high"] - iv["point"]]], fmt="o",
                   color="black", capsize=4)
    b.set_yticks(range(len(pairs)), [f"P({p.split('>')[0].upper()} > {p.split('>')[1].upper()})"
                                     for p in pairs], fontsize=8)
    b.axvline(0.5, color="gray", lw=0.8, ls="--")
    b.set_xlim(-0.02, 1.02)
    b.set_xlabel("probability of improvement", fontsize=8)
    fig.suptitle(f"{', '.join(agg['tasks'])}: 95% stratified bootstrap over {agg['runs_per_method']} runs "
                 "per task", fontsize=9)
    fig.tight_layout()
    path = out / "aihf_mujoco_intervals.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)

