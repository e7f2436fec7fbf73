"""004 Figure 5 / Table 1: AIHF vs RLHF vs IRL-only on MuJoCo, true return vs environment steps.

The pipeline of 004 App. A.2.1 (:mod:`prefgym.data.control`), run end to end:

1. *Data.* An SB3 SAC expert on the true reward saves ``n_checkpoints``
   checkpoints (:func:`~prefgym.data.control.train_expert`; on the quick budget the
   "checkpoints" are the scripted controller of the cheap task at decreasing action
   noise); every checkpoint is rolled out deterministically for
   ``steps_per_checkpoint`` steps into one Minari dataset, and checkpoints are split
   by mean return into the tiers ``low`` / ``medium`` / ``high``
   (:func:`~prefgym.data.control.make_checkpoint_rollouts`). Demonstrations: the
   first ``demo_steps`` steps of ``high`` episodes. Preferences: ``n_pairs`` pairs of
   ``segment_length``-step segments from two different ``low`` / ``medium``
   checkpoints, labelled by the oracle teacher on the true segment return
   (:func:`~prefgym.data.control.build_preference_pairs`). The data-quality table is
   004's Table 1 for these data (mean +- std of the episode returns per tier).
2. *Learners* (:class:`~prefgym.agents.aihf.AIHF`, same data, same SAC and reward
   net, ``seeds`` independent runs each, evaluated every ``eval_every`` env steps
   by ``eval_episodes`` deterministic episodes of *true* return):

   - ``aihf``: both terms with 004's estimator (Eq. 34 weights ``|D|``, ``|P|``, one temperature =
     SAC's entropy coefficient; :class:`~prefgym.agents.aihf.AIHF`), SAC from a random policy (004);
   - ``rlhf``: BC-initialised actor (``bc_steps``), reward fitted on preferences alone
     (``reward_pretrain_steps``) then frozen, SAC on it (004's RLHF baseline);
   - ``irl``: demonstrations alone (ML-IRL), random policy.

   SAC: :data:`~prefgym.agents.aihf.DEFAULT_SAC_KWARGS` ((64, 64) ReLU, lr 3e-3,
   batch 100, entropy 0.2; 004 A.2.1 / ML-IRL). Reward net: (64, 64) ReLU on the
   state alone with a softplus output (non-negative rewards, so that ending a
   Hopper episode early is never rewarded; clamp 10), Adam with weight decay 1e-3.
   These and the budget knobs below are our choices; 004 does not give them.

Budgets (``--budget``; ``quick=True`` is ``"quick"``):

- ``quick`` (tests, seconds): ``InvertedPendulum-v5`` capped at 200 steps, scripted
  checkpoints, 1 seed, 1000 SAC steps per learner;
- ``small`` (a 2-core CPU, 22-38 minutes wall per task with 2 worker processes, the
  expert included): ``Hopper-v5`` (or ``--env``), 60k-step expert with 10 checkpoints,
  3k rollout steps per checkpoint, 10k demonstration steps, 2000 pairs of 50-step
  segments, 5 seeds x 30k SAC steps per learner (cut from 3 x 50k to afford 5 seeds),
  true return of 10 deterministic episodes every 5k steps, 1000 SAC steps and 20 reward
  steps (lr 1e-3) per outer iteration;
- ``paper`` (a GPU / many-core machine, hours): 1M-step expert with 20 checkpoints,
  30k rollout steps per checkpoint (004), 10k demonstration steps and 20k pairs
  (004's "10k demonstrations and 20k preferences"), 3 seeds x 1M SAC steps, 5k SAC
  steps (004) and 10 reward steps at lr 1e-4 (004) per outer iteration.

Verdicts, criteria fixed before the run (:mod:`~prefgym.reproductions.aihf_mujoco_stats`,
where the scores, the normalisation and the rules are spelt out). A run's final score is
the mean of its last two evaluations; the methods are compared by the probability of
improvement and the interquartile mean with 95% stratified-bootstrap intervals
(:mod:`~prefgym.reproductions.rl_intervals`, the estimators of ``rliable``):

(i) AIHF beats RLHF (004 Fig. 5), (ii) AIHF beats IRL-only: "held" when the interval of
    ``P(AIHF > X)`` lies above 1/2, "did not hold" when below, else "inconclusive";
(iii) RLHF does not improve on its BC initialisation (004's reading of Fig. 5): "held" when
      the interval of the IQM of RLHF's gain (final - step 0, in units of demonstrations
      minus random-init return) lies below 0.1, "did not hold" when above;
(iv) data quality as in Table 1: mean returns ``low < medium < high`` (non-preferred
     < preferred < demonstrations).

With fewer than 3 seeds (the quick budget) (i)-(iii) are "inconclusive" by rule.

Three tasks: ``--env all`` runs ``Hopper-v5``, ``HalfCheetah-v5`` and ``Walker2d-v5`` into
``OUT/ENV`` (a task folder whose ``summary.json`` has the same settings is reused, not rerun)
and writes the aggregate into ``OUT``: ``aihf_mujoco_tasks.png`` (Figure 5's three panels),
``aihf_mujoco_intervals.png``, ``aihf_mujoco_aggregate.csv`` / ``.json``,
``aihf_mujoco_table1.csv`` and the verdicts per task and across tasks.
``scripts/aihf_mujoco_aggregate.py DIR... --out OUT`` aggregates finished task folders
without running anything.

Determinism. On one machine the same seed gives the same numbers, bit for bit, in this
process, a spawned worker or a Ray task (``tests/test_aihf_mujoco_determinism.py``): one
torch thread in the driver and in every run; SAC seeded by the run's seed (torch, NumPy,
``random``, action space, first env reset); the reward net initialised from a forked,
seeded torch generator and its minibatches drawn from the agent's own ``np.random.Generator``;
evaluation episode ``i`` of seed ``s`` reset with ``100000 + 1000 s + i``; the expert and
the rollouts seeded; Minari episodes read back in file order; preference pairs drawn from
``default_rng(0)`` over sorted checkpoint groups; results collected in job order. Not
removable: another CPU's floating-point kernels (AVX512 / AVX2 / scalar ATen and MKL paths)
or another thread count change the last bits, which SAC amplifies over thousands of
updates; ``scripts/aihf_determinism_check.py`` measures by how much (BENCHMARKS.md,
aihf-mujoco, "Determinism"). ``MKL_CBWR=COMPATIBLE`` in the environment removes MKL's
ISA dependence (measured there) but changes the numbers, so it is left to the user.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.optional import require
from prefgym.reproductions.executor import make_executor
from prefgym.reproductions.registry import Reproduction, as_progress

__all__ = ["BUDGETS", "MODES", "REPRODUCTION", "run", "data_quality_table", "train_and_evaluate",
           "reusable_task_summary"]

MODES = ("aihf", "rlhf", "irl")
LABELS = {"aihf": "AIHF (random init)", "rlhf": "RLHF (BC init, frozen BTL reward)",
          "irl": "IRL only (ML-IRL)"}
COLORS = {"aihf": "tab:orange", "rlhf": "tab:blue", "irl": "tab:purple"}

#: reward net and reward optimiser shared by all modes (our choices, module docstring)
REWARD_NET = {"hidden_sizes": (64, 64), "activation": "relu", "use_action": False,
              "output_activation": "softplus", "clamp_magnitude": 10.0}

BUDGETS: dict[str, dict[str, Any]] = {
    "quick": {
        "env": "InvertedPendulum-v5", "env_kwargs": {"max_episode_steps": 200},
        "scripted_noises": (4.0, 3.0, 2.0, 1.6, 1.2, 0.5), "expert_steps": 3000, "n_checkpoints": 6,
        "steps_per_checkpoint": 400, "demo_steps": 400, "n_pairs": 300, "segment_length": 50,
        "seeds": (0,), "total_steps": 1000, "eval_every": 500, "eval_episodes": 2,
        "sac_steps_per_iter": 250, "reward_steps_per_iter": 20, "reward_lr": 1e-3,
        "reward_pretrain_steps": 200, "bc_steps": 200, "workers": 1,
    },
    "small": {
        "env": "Hopper-v5", "env_kwargs": {}, "scripted_noises": None, "expert_steps": 60_000,
        "n_checkpoints": 10, "steps_per_checkpoint": 3000, "demo_steps": 10_000, "n_pairs": 2000,
        "segment_length": 50, "seeds": (0, 1, 2, 3, 4), "total_steps": 30_000, "eval_every": 5000,
        "eval_episodes": 10, "sac_steps_per_iter": 1000, "reward_steps_per_iter": 20, "reward_lr": 1e-3,
        "reward_pretrain_steps": 1000, "bc_steps": 2000, "workers": 2,
    },
    "paper": {
        "env": "Hopper-v5", "env_kwargs": {}, "scripted_noises": None, "expert_steps": 1_000_000,
        "n_checkpoints": 20, "steps_per_checkpoint": 30_000, "demo_steps": 10_000, "n_pairs": 20_000,
        "segment_length": 50, "seeds": (0, 1, 2), "total_steps": 1_000_000, "eval_every": 20_000,
        "eval_episodes": 5, "sac_steps_per_iter": 5000, "reward_steps_per_iter": 10, "reward_lr": 1e-4,
        "reward_pretrain_steps": 2000, "bc_steps": 10_000, "workers": 9,
    },
}


# ------------------------------------------------------------------ data
def _make_data(cfg: dict, out_dir: Path, progress: bool) -> dict:
    """Expert (or scripted) checkpoints -> ranked rollouts -> demonstrations and preference pairs."""
    from prefgym.agents.aihf import DEFAULT_SAC_KWARGS
    from prefgym.data.control import (
        build_preference_pairs,
        flatten_episodes,
        load_episodes,
        make_checkpoint_rollouts,
        scripted_policy,
        train_expert,
    )

    env_id, env_kwargs = cfg["env"], cfg["env_kwargs"]
    root = out_dir / "minari"
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if cfg["scripted_noises"] is not None:
        checkpoints = [(k + 1, scripted_policy(env_id, noise, seed=k))
                       for k, noise in enumerate(cfg["scripted_noises"])]
        info["source"] = f"scripted controller at action noise {list(cfg['scripted_noises'])}"
    else:
        expert_dir = out_dir / "expert"
        manifest = expert_dir / "expert.json"
        old = json.loads(manifest.read_text()) if manifest.exists() else {}
        if (old.get("total_timesteps") == cfg["expert_steps"] and old.get("env_id") == env_id
                and old.get("format") == "prefgym.expert"):  # older experts are pickled SB3 zips
            info["expert_reused"] = True
        else:
            train_expert(env_id, cfg["expert_steps"], expert_dir, n_checkpoints=cfg["n_checkpoints"],
                         sac_kwargs=DEFAULT_SAC_KWARGS, seed=0, env_kwargs=env_kwargs, progress_bar=False,
                         overwrite=True)
        checkpoints = expert_dir
        info["source"] = (f"SB3 SAC expert, {cfg['expert_steps']} steps, {cfg['n_checkpoints']} checkpoints, "
                          "DEFAULT_SAC_KWARGS")
    info["expert_s"] = round(time.perf_counter() - t0, 1)
    ds = make_checkpoint_rollouts(env_id, checkpoints, steps_per_checkpoint=cfg["steps_per_checkpoint"],
                                  root=root, overwrite=True, env_kwargs=env_kwargs or None, seed=0)
    ds_id = ds.spec.dataset_id
    episodes = load_episodes(ds_id, env_id=env_id, root=root, kind="checkpoints")
    demos = load_episodes(ds_id, env_id=env_id, root=root, tiers=["high"], kind="checkpoints",
                          max_steps=cfg["demo_steps"])
    prefs = build_preference_pairs(episodes, cfg["n_pairs"], segment_length=cfg["segment_length"],
                                   teacher="oracle", tiers=("low", "medium"), env_id=env_id, seed=0)
    prefs.save(out_dir / "preferences.npz")
    info["data_s"] = round(time.perf_counter() - t0 - info["expert_s"], 1)
    return {"episodes": episodes, "demos": demos, "demo_arrays": flatten_episodes(demos), "prefs": prefs,
            "dataset_id": ds_id, "info": info}


def data_quality_table(episodes, demos, prefs) -> dict[str, dict[str, float]]:
    """004 Table 1 for our data: episode returns per tier, of the demonstrations used, and segment returns.

    Rows ``non_prefer`` (``low`` tier), ``prefer`` (``medium``), ``demonstration``
    (``high``), ``demonstrations_used`` (the demonstration episodes given to the
    learners) and ``segments_preferred`` / ``segments_rejected`` (true returns of the
    segments the teacher preferred / rejected, pairs with a strict label).
    """
    def stats(rets) -> dict[str, float]:
        rets = np.asarray(rets, float)
        return {"mean_return": float(rets.mean()), "std_return": float(rets.std()), "n": int(rets.size)}

    out = {}
    for row, tier in (("non_prefer", "low"), ("prefer", "medium"), ("demonstration", "high")):
        eps = [e for e in episodes if e.metadata.get("tier") == tier]
        out[row] = {**stats([e.ret for e in eps]), "steps": int(sum(e.length for e in eps))}
    out["demonstrations_used"] = {**stats([e.ret for e in demos]), "steps": int(sum(e.length for e in demos))}
    strict = prefs.labels != 0.5
    win = np.where(prefs.labels > 0.5, prefs.returns_a, prefs.returns_b)[strict]
    lose = np.where(prefs.labels > 0.5, prefs.returns_b, prefs.returns_a)[strict]
    out["segments_preferred"] = stats(win)
    out["segments_rejected"] = stats(lose)
    out["checkpoint_returns"] = {
        str(k): float(np.mean([e.ret for e in episodes if e.metadata.get("checkpoint") == k]))
        for k in sorted({e.metadata.get("checkpoint") for e in episodes})}
    return out


# ------------------------------------------------------------------ one learner
def _evaluate(agent, env, n: int, seed: int) -> list[float]:
    rets = []
    for i in range(n):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
        rets.append(total)
    return rets


def train_and_evaluate(job: dict) -> dict:
    """Train one ``job["mode"]`` learner for ``job["total_steps"]`` steps, evaluating every ``eval_every``.

    Runs in a worker process (one torch thread). Returns the evaluation steps, the
    true returns ``(evals, eval_episodes)``, the reward's rank correlation with the true
    return on ``job["test_episodes"]`` (a subset of the rollouts, not held out), the last
    reward statistics and the wall time.
    """
    import gymnasium
    import torch

    from prefgym.agents.aihf import AIHF, reward_rank_correlation

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env_id, kw, seed, mode = job["env"], job["env_kwargs"], job["seed"], job["mode"]
    agent = AIHF(gymnasium.make(env_id, **kw), demonstrations=job["demos"], preferences=job["prefs"],
                 mode=mode, seed=seed, reward_net_kwargs=REWARD_NET, reward_lr=job["reward_lr"],
                 reward_steps_per_iter=job["reward_steps_per_iter"],
                 sac_steps_per_iter=job["sac_steps_per_iter"],
                 reward_pretrain_steps=job["reward_pretrain_steps"] if mode == "rlhf" else 0,
                 bc_steps=job["bc_steps"] if mode == "rlhf" else 0)
    eval_env = gymnasium.make(env_id, **kw)
    eval_seed = 100_000 + 1000 * seed
    agent.learn(0)  # pretraining only (RLHF: BC and the preference reward)
    steps, returns = [0], [_evaluate(agent, eval_env, job["eval_episodes"], eval_seed)]
    while agent.sac.num_timesteps < job["total_steps"]:
        agent.learn(min(job["eval_every"], job["total_steps"] - agent.sac.num_timesteps))
        steps.append(int(agent.sac.num_timesteps))
        returns.append(_evaluate(agent, eval_env, job["eval_episodes"], eval_seed))
    # rank correlation on a subset of the rollout episodes (the data's source, not held out)
    rho = reward_rank_correlation(agent, job["test_episodes"]) if job.get("test_episodes") else float("nan")
    last = {k: v for k, v in (agent.history[-1] if agent.history else {}).items()
            if isinstance(v, (int, float))}
    return {"mode": mode, "seed": seed, "steps": steps, "returns": returns, "reward_rank_correlation": rho,
            "last_reward_stats": last, "wall_s": round(time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------ main
def _config(budget: str, env: str | None) -> dict[str, Any]:
    """The budget's settings, with ``env`` (if given) in place of its task."""
    from prefgym.data.control import _SCRIPTED

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}; got {budget!r}")
    cfg = dict(BUDGETS[budget])
    if env is not None and env != cfg["env"]:
        cfg["env"] = env
        if budget == "quick" and env in _SCRIPTED:
            cfg["scripted_noises"] = BUDGETS["quick"]["scripted_noises"]
        else:
            cfg["scripted_noises"] = None
            cfg["env_kwargs"] = {}
    return cfg


def _settings(cfg: dict, budget: str) -> dict[str, Any]:
    """``summary["settings"]``: what a task folder was run with (compared to reuse it)."""
    return {"budget": budget, **cfg, "reward_net": REWARD_NET, "modes": {m: LABELS[m] for m in MODES}}


def reusable_task_summary(folder: Path, budget: str, env: str) -> dict | None:
    """``folder``'s ``summary.json`` if it was written with ``budget``'s settings on ``env``, else None."""
    from prefgym.serialization import json_default

    path = Path(folder) / "summary.json"
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    want = json.loads(json.dumps(_settings(_config(budget, env), budget), default=json_default))
    return old if old.get("settings") == want and "runs" in old else None


def _run_all_tasks(out_dir: Path, budget: str, progress, executor, address) -> dict:
    """``--env all``: each of :data:`~.aihf_mujoco_stats.TASKS` in ``out_dir/ENV``, then the aggregate.

    A task folder whose ``summary.json`` was written with the same settings is reused (not
    rerun); any other task folder is (re)run. The aggregate (figures, CSV/JSON, verdicts over
    the three tasks) goes into ``out_dir`` (:func:`~.aihf_mujoco_stats.aggregate`).
    """
    from prefgym.fileio import atomic_write
    from prefgym.reproductions.aihf_mujoco_stats import TASKS, aggregate
    from prefgym.serialization import json_default

    summaries, reused = [], []
    for env in TASKS:
        sub = out_dir / env
        old = reusable_task_summary(sub, budget, env)
        if old is not None:
            summaries.append(old)
            reused.append(env)
            continue
        sub.mkdir(parents=True, exist_ok=True)
        summary = run(sub, progress=progress, budget=budget, env=env, executor=executor, address=address)
        summary = {"reproduction": "aihf-mujoco", "quick": budget == "quick", "budget": budget, "env": env,
                   **summary}
        with atomic_write(sub / "summary.json", "w") as fh:
            json.dump(summary, fh, indent=2, default=json_default)
        summaries.append(json.loads(json.dumps(summary, default=json_default)))
    result = aggregate(summaries, out_dir)
    return {"settings": {"budget": budget, "env": "all", "tasks": list(TASKS)}, "reused_task_folders": reused,
            **result}


def run(out_dir: Path, quick: bool = False, progress: bool = True, budget: str | None = None,
        env: str | None = None, executor: str | None = None, address: str | None = None) -> dict:
    """Make the data, train the three learners over the seeds, judge the claims (module docstring).

    Parameters
    ----------
    budget
        ``"quick"``, ``"small"`` or ``"paper"``; default ``"quick"`` if ``quick`` else ``"small"``.
    env
        Override the budget's environment (a MuJoCo / Box task; tiers come from a SAC expert
        unless the budget is ``"quick"`` and the task has a scripted controller).
    executor, address
        Where the runs (method x seed) go (:mod:`~prefgym.reproductions.executor`):
        ``"process"`` (default; the budget's ``workers`` local processes) or ``"ray"``, one
        Ray task per run with a 1-CPU request, on a local instance (``address`` None) or a
        cluster (``"auto"`` or ``"HOST:PORT"``). Results are collected in job order.
    """
    import torch

    torch.set_num_threads(1)  # the expert and rollouts run here; 2-core machines run 2 workers
    # the verdicts' intervals need rliable: fail before training, not after
    require("rliable.metrics", extra="rliable", purpose="aihf-mujoco's interval verdicts need rliable")
    budget = budget or ("quick" if quick else "small")
    if env == "all":
        return _run_all_tasks(Path(out_dir), budget, progress, executor, address)
    cfg = _config(budget, env)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    data = _make_data(cfg, out_dir, progress)
    table = data_quality_table(data["episodes"], data["demos"], data["prefs"])

    test_episodes = data["episodes"][:: max(1, len(data["episodes"]) // 60)]
    common = {k: cfg[k] for k in ("env", "env_kwargs", "total_steps", "eval_every", "eval_episodes",
                                  "sac_steps_per_iter", "reward_steps_per_iter", "reward_lr",
                                  "reward_pretrain_steps", "bc_steps")}
    jobs = [{**common, "mode": m, "seed": s, "demos": data["demo_arrays"], "prefs": data["prefs"],
             "test_episodes": test_episodes} for s in cfg["seeds"] for m in MODES]
    bar = as_progress(progress, "aihf-mujoco")
    bar.total = len(jobs)

    def done(r: dict) -> None:
        bar.update(1, label=f"{r['mode']} seed {r['seed']}: {np.mean(r['returns'][-1]):.0f}")

    t_train = time.perf_counter()
    runner = make_executor(executor, workers=cfg["workers"], address=address)
    results = runner.run(train_and_evaluate, jobs, on_result=done)  # job order, whatever finished first
    bar.close()
    train_s = time.perf_counter() - t_train

    steps = np.asarray(results[0]["steps"])
    curves = {m: np.stack([np.mean(r["returns"], axis=1) for r in sorted(results, key=lambda r: r["seed"])
                           if r["mode"] == m], axis=1) for m in MODES}  # (evals, seeds)
    summary: dict[str, Any] = {
        "settings": _settings(cfg, budget),
        "data": {**data["info"], "dataset_id": data["dataset_id"]},
        "data_quality": table,
        "true_return": {m: {"steps": steps, "mean": curves[m].mean(1), "std": curves[m].std(1),
                            "per_seed": curves[m].T} for m in MODES},
        "runs": [{k: r[k] for k in ("mode", "seed", "steps", "returns", "reward_rank_correlation",
                                    "last_reward_stats", "wall_s")}
                 for r in results],
        "train_wall_s": round(train_s, 1),
        "executor": runner.describe(),
        "total_env_steps": int(len(jobs) * cfg["total_steps"]),
    }
    summary["verdicts"] = _verdicts(summary, curves, table)
    summary["files"] = _write_outputs(out_dir, summary, curves, steps, table, cfg)
    summary["wall_s_before_summary"] = round(time.perf_counter() - t0, 1)
    return summary


def _final(curve: np.ndarray) -> np.ndarray:
    """Per seed: the mean of the last two evaluations of ``curve (evals, seeds)``."""
    return curve[-2:].mean(0) if curve.shape[0] >= 2 else curve[-1]


def _verdicts(summary: dict, curves: dict[str, np.ndarray], table: dict) -> dict[str, str]:
    """Interval verdicts of this one task (:func:`~.aihf_mujoco_stats.interval_verdicts`)."""
    from prefgym.reproductions.aihf_mujoco_stats import interval_verdicts, task_scores

    fin = {m: _final(curves[m]) for m in MODES}
    summary["final_true_return"] = {m: {"mean": float(fin[m].mean()), "std": float(fin[m].std()),
                                        "per_seed": fin[m]} for m in MODES}
    verdicts, numbers = interval_verdicts([task_scores(summary)])
    summary["intervals"] = numbers
    return verdicts


def _write_outputs(out_dir: Path, summary, curves, steps, table, cfg) -> list[str]:
    from prefgym.plotting import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for m in MODES:
        mean, std = curves[m].mean(1), curves[m].std(1)
        ax.plot(steps, mean, label=LABELS[m], color=COLORS[m], lw=1.6)
        ax.fill_between(steps, mean - std, mean + std, color=COLORS[m], alpha=0.15, linewidth=0)
    for row, style in (("demonstration", "-"), ("prefer", "--"), ("non_prefer", ":")):
        ax.axhline(table[row]["mean_return"], color="gray", lw=0.9, ls=style, label=f"data: {row}")
    ax.set_xlabel("SAC environment steps")
    ax.set_ylabel(f"true return (mean +- std over {curves['aihf'].shape[1]} seeds)")
    ax.set_title(f"004 Fig. 5 on {cfg['env']} ({summary['settings']['budget']} budget)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    png = out_dir / "aihf_mujoco.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)

    csv_path = out_dir / "aihf_mujoco_curves.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        n = curves["aihf"].shape[1]
        w.writerow(["env_steps", *(f"{m}_{s}" for m in MODES for s in ("mean", "std")),
                    *(f"{m}_seed{i}" for m in MODES for i in range(n))])
        for i, t in enumerate(steps):
            w.writerow([int(t),
                        *(f"{x:.2f}" for m in MODES for x in (curves[m][i].mean(), curves[m][i].std())),
                        *(f"{curves[m][i, j]:.2f}" for m in MODES for j in range(n))])
    table_path = out_dir / "aihf_mujoco_data_quality.csv"
    with open(table_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["data", "mean_return", "std_return", "n"])
        for row, s in table.items():
            if "mean_return" in s:
                w.writerow([row, f"{s['mean_return']:.2f}", f"{s['std_return']:.2f}", s["n"]])
    return [str(png), str(csv_path), str(table_path), str(out_dir / "preferences.npz")]


REPRODUCTION = Reproduction(
    name="aihf-mujoco",
    description=("004 Fig. 5 / Table 1: AIHF vs RLHF vs IRL-only on MuJoCo (Hopper-v5), true return vs "
                 "SAC steps, and the data-quality table"),
    runner=run,
    options=("budget", "env", "executor", "address"),
)
