"""PPO self-play on 001's random gridworlds: exact exploitability over training, beside OMPO.

Does a deep-RL learner trained by self-play (:mod:`prefgym.selfplay`: SB3 PPO against a
pool of its own frozen snapshots) find the Nash equilibrium of a Markov preference
game? On a gridworld every ``(h, s)`` can be enumerated, so the PPO policy's action
distributions are read out as a tabular policy ``(K, H, S, A)``
(:func:`~prefgym.selfplay.tabular_policy`) and its exploitability is computed
*exactly* by backward induction, the measure of 001 Fig. 1a.

Setup (fixed before the full run):

- Games: ``random_gridworld(seed=s)`` for ``s`` in (1, 3, 6) (S, A = (48, 6), (82, 2),
  (45, 6); ``H = 5``), the quick games of ``ompo-gridworld``. ``--quick``: ``s = 11``
  (S = 14, A = 3) only.
- Learner: SB3 PPO, ``MlpPolicy`` (64, 64), 4 ``DummyVecEnv`` copies, ``n_steps = 256``,
  ``batch_size = 256``, ``gamma = 1`` (the game is undiscounted), ``ent_coef = 0.01``,
  other arguments SB3's defaults, seed 0. The observation is ``[h, s]``
  (``observe_step=True``), so the policy can be non-stationary like the NE; reward the
  expected step preference ``r_h``.
- Self-play: a snapshot every 2 000 steps; two pools: ``uniform`` (10 snapshots, the
  opponent drawn uniformly; fictitious-play flavour) and ``latest`` (the newest
  snapshot only; plain self-play). 60 000 steps per run (quick: 8 000).
- Exploitability of the read-out every 2 000 steps: last iterate, and the average
  iterate (the policy whose occupancy is the mean of the read-outs' occupancies).
- OMPO: occupancy form (001 Alg. 1 / Thm 10), exact Q, ``beta = 10`` (the step that
  ``ompo-gridworld``'s pre-registered rule selects on its held-out games), 2 000 updates
  (quick: 200), on the same games. OMPO's x axis is updates with exact
  payoffs; PPO's is sampled environment steps: the two are plotted on their own axes
  and compared by level, not by cost.

Pre-registered classification of each PPO run (last iterate, ``e`` its exploitability
curve, ``e_U`` the uniform policy's exploitability, second half = the evaluations
after half the steps):

- *converges*: final ``e <= 0.1 e_U`` and the second half's max ``<= 0.2 e_U``;
- *cycles*: not converging, and the second half's range (max - min) ``>= 0.3 x``
  its mean (the exploitability goes up and down as the pool chases itself);
- *stalls*: otherwise (stays flat above ``0.1 e_U``).

Claims, with criteria fixed before the full run (evaluated on the full run; the quick
run's verdicts are smoke checks):

(i) PPO self-play with the uniform pool converges (as above) on at least 2 of the 3 games;
(ii) PPO self-play learns something: its minimum last-iterate exploitability over training
     is below ``0.8 e_U`` on every game, for both pools;
(iii) PPO's output is within a factor 10 of OMPO's: for each method its better final
      iterate (the lower of the last and the average iterate's final exploitability; PPO
      with the uniform pool), on the mean of the games;
(iv) the uniform pool ends below the latest-only pool (final last-iterate exploitability,
     mean of the games): the pool damps cycling.

The summary records the wall and CPU time of the run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from prefgym.agents.markov import OMPO
from prefgym.fileio import atomic_write_text
from prefgym.games.gridworld import random_gridworld
from prefgym.reproductions.analysis import fmt, verdict
from prefgym.reproductions.registry import Reproduction

__all__ = ["REPRODUCTION", "run", "SIZES", "PPO_KWARGS", "classify"]

SIZES = {
    False: {"seeds": (1, 3, 6), "steps": 60_000, "ompo_updates": 2000},
    True: {"seeds": (11,), "steps": 8_000, "ompo_updates": 200},
}
#: PPO's arguments (others: SB3's defaults)
PPO_KWARGS = {"n_steps": 256, "batch_size": 256, "gamma": 1.0, "ent_coef": 0.01,
              "policy_kwargs": {"net_arch": [64, 64]}}
N_ENVS = 4
SNAPSHOT_EVERY = 2_000
EVAL_EVERY = 2_000
POOLS = {"uniform": {"pool_size": 10, "sampling": "uniform"},
         "latest": {"pool_size": 1, "sampling": "latest"}}
OMPO_BETA = 10.0
FIGURE = "selfplay_gridworld.png"


def classify(curve: np.ndarray, uniform_exploitability: float) -> str:
    """``"converges"``, ``"cycles"`` or ``"stalls"`` by the module docstring's fixed rule."""
    e = np.asarray(curve, float)
    half = e[len(e) // 2:]
    if e[-1] <= 0.1 * uniform_exploitability and half.max() <= 0.2 * uniform_exploitability:
        return "converges"
    if half.max() - half.min() >= 0.3 * half.mean():
        return "cycles"
    return "stalls"


def _train_ppo(game, steps: int, pool: dict, seed: int, progress_cb) -> dict[str, np.ndarray]:
    from stable_baselines3 import PPO

    from prefgym.selfplay import ExploitabilityCallback, SelfPlayCallback, make_selfplay_vec_env

    env = make_selfplay_vec_env("prefgym/GridworldRandom-v0", n_envs=N_ENVS, seed=seed,
                                env_kwargs={"game": game}, observe_step=True, **pool)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", **PPO_KWARGS)
    ex = ExploitabilityCallback(game, eval_every=EVAL_EVERY)
    model.learn(steps, callback=[SelfPlayCallback(SNAPSHOT_EVERY), ex, progress_cb])
    env.close()
    return {"timesteps": np.asarray(ex.timesteps), "last": np.asarray(ex.exploitability),
            "average": np.asarray(ex.average_exploitability)}


def _progress_callback(bar):
    from stable_baselines3.common.callbacks import BaseCallback

    class _Bar(BaseCallback):
        def _on_step(self) -> bool:
            bar.update(self.training_env.num_envs)
            return True

    return _Bar()


def run(out_dir: Path, quick: bool = False, progress: bool = True) -> dict:
    """Train PPO self-play (two pools) and OMPO on the games; judge the claims; see the module docstring."""
    import torch

    size = SIZES[bool(quick)]
    wall0, cpu0 = time.perf_counter(), os.times()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    games = {s: random_gridworld(seed=s) for s in size["seeds"]}
    T, steps = size["ompo_updates"], size["steps"]
    bar = tqdm(total=steps * len(games) * len(POOLS), disable=not progress, desc="selfplay-gridworld",
               unit="step", mininterval=0.5)
    try:
        ppo = {name: {s: _train_ppo(g, steps, pool, 0, _progress_callback(bar)) for s, g in games.items()}
               for name, pool in POOLS.items()}
    finally:
        bar.close()
        torch.set_num_threads(torch_threads)
    ompo = {}
    for s, g in games.items():
        hist = OMPO(g, learning_rate=OMPO_BETA, form="occupancy").learn(T).history
        ompo[s] = {"last": np.asarray(hist["exploitability"]),
                   "average": np.asarray(hist["average_exploitability"])}
    uniform = {s: float(g.exploitability(g.uniform_policy())) for s, g in games.items()}

    per_game = {}
    for s, g in games.items():
        row = {"S": g.n_states, "A": g.n_actions, "H": g.horizon, "uniform_exploitability": uniform[s],
               "ompo_final_last": float(ompo[s]["last"][-1]),
               "ompo_final_average": float(ompo[s]["average"][-1])}
        for name in POOLS:
            c = ppo[name][s]
            row[f"ppo_{name}"] = {"final_last": float(c["last"][-1]),
                                  "final_average": float(c["average"][-1]),
                                  "min_last": float(c["last"].min()),
                                  "class": classify(c["last"], uniform[s])}
        per_game[s] = row
    verdicts = _judge(per_game, list(games), quick)
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system) + (cpu1.children_user - cpu0.children_user)
    summary = {
        "settings": {"seeds": size["seeds"], "ppo_steps": steps, "ompo_updates": T, "ompo_beta": OMPO_BETA,
                     "ppo_kwargs": PPO_KWARGS, "n_envs": N_ENVS, "snapshot_every": SNAPSHOT_EVERY,
                     "eval_every": EVAL_EVERY, "pools": POOLS, "torch_threads": 1},
        "per_game": per_game,
        "timesteps": ppo["uniform"][size["seeds"][0]]["timesteps"],
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "verdicts": verdicts,
        "files": _write_outputs(Path(out_dir), games, ppo, ompo, uniform, steps, T),
    }
    if quick:
        summary["note"] = "quick run: one small game, short budgets; the verdicts are smoke checks"
    return summary


def _judge(per_game: dict, seeds: list[int], quick: bool) -> dict[str, str]:
    v: dict[str, str] = {}
    classes = {s: per_game[s]["ppo_uniform"]["class"] for s in seeds}
    n_conv = sum(c == "converges" for c in classes.values())
    need = 1 if quick else 2
    v["(i) PPO self-play (uniform pool) converges"] = verdict(
        n_conv >= need, "classes " + ", ".join(f"game {s}: {c}" for s, c in classes.items())
        + f" (criterion: converges on >= {need} of {len(seeds)} games)")
    ok, parts = True, []
    for s in seeds:
        for name in POOLS:
            r = per_game[s][f"ppo_{name}"]
            ok &= r["min_last"] < 0.8 * per_game[s]["uniform_exploitability"]
            parts.append(f"game {s} {name}: min {fmt(r['min_last'])} vs uniform "
                         f"{fmt(per_game[s]['uniform_exploitability'])}")
    v["(ii) PPO self-play improves on the uniform policy"] = verdict(
        bool(ok), "; ".join(parts) + " (criterion: min over training < 0.8 x uniform's, every game and pool)")
    ppo_mean = float(np.mean([per_game[s]["ppo_uniform"]["final_last"] for s in seeds]))
    ppo_best = float(np.mean([min(per_game[s]["ppo_uniform"]["final_last"],
                                  per_game[s]["ppo_uniform"]["final_average"]) for s in seeds]))
    ompo_best = float(np.mean([min(per_game[s]["ompo_final_last"], per_game[s]["ompo_final_average"])
                               for s in seeds]))
    v["(iii) PPO self-play within a factor 10 of OMPO"] = verdict(
        ppo_best <= 10 * ompo_best, f"better final iterate, mean of the games: PPO (uniform pool) "
        f"{fmt(ppo_best)} vs OMPO {fmt(ompo_best)} (ratio {ppo_best / max(ompo_best, 1e-300):.3g}; "
        "criterion <= 10)")
    latest_mean = float(np.mean([per_game[s]["ppo_latest"]["final_last"] for s in seeds]))
    v["(iv) the uniform pool ends below the latest-only pool"] = verdict(
        ppo_mean < latest_mean, f"final last iterate, mean of the games: uniform pool {fmt(ppo_mean)}, "
        f"latest only {fmt(latest_mean)} (criterion: uniform lower)")
    return v


def _write_outputs(out_dir: Path, games, ppo, ompo, uniform, steps: int, T: int) -> list[str]:
    from prefgym.plotting import _pyplot

    plt = _pyplot()
    n = len(games)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
    for ax, (s, g) in zip(axes[0], games.items(), strict=True):
        for name, colour in (("uniform", "tab:orange"), ("latest", "tab:purple")):
            c = ppo[name][s]
            ax.plot(c["timesteps"], c["last"], color=colour, lw=1.4, marker=".",
                    label=f"PPO self-play, {name} pool: last")
            ax.plot(c["timesteps"], c["average"], color=colour, lw=1.0, ls="--",
                    label=f"PPO self-play, {name} pool: average")
        ax.axhline(uniform[s], color="grey", lw=0.8, ls=":", label="uniform policy")
        ax.set_yscale("log")
        ax.set_xlabel("PPO environment steps")
        ax.set_title(f"random_gridworld(seed={s}): S={g.n_states}, A={g.n_actions}, H={g.horizon}",
                     fontsize=9)
        top = ax.twiny()
        x = np.arange(1, T + 1)
        top.plot(x, ompo[s]["last"], color="tab:blue", lw=1.2, label=f"OMPO (beta={OMPO_BETA:g}): last")
        top.plot(x, ompo[s]["average"], color="tab:blue", lw=1.0, ls="--", label="OMPO: average")
        top.set_xlabel("OMPO policy updates (exact Q)", fontsize=8, color="tab:blue")
        top.tick_params(axis="x", colors="tab:blue", labelsize=8)
        ax.grid(True, which="major", alpha=0.3)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = top.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=6, loc="lower left")
    axes[0, 0].set_ylabel("exact exploitability")
    fig.suptitle("Self-play PPO (SB3, snapshot pools) vs OMPO on 001's random gridworlds:\n"
                 "exact exploitability of the read-out tabular policy", fontsize=9)
    fig.tight_layout()
    png = out_dir / FIGURE
    fig.savefig(png, dpi=110)
    plt.close(fig)
    lines = ["method,game,step,last_exploitability,average_exploitability"]
    for name in POOLS:
        for s in games:
            c = ppo[name][s]
            lines += [f"ppo_{name},{s},{t},{a:.6e},{b:.6e}"
                      for t, a, b in zip(c["timesteps"], c["last"], c["average"], strict=True)]
    for s in games:
        lines += [f"ompo,{s},{t + 1},{a:.6e},{b:.6e}"
                  for t, (a, b) in enumerate(zip(ompo[s]["last"], ompo[s]["average"], strict=True))]
    csv = atomic_write_text(out_dir / "selfplay_gridworld_curves.csv", "\n".join(lines) + "\n")
    return [str(png), str(csv)]


REPRODUCTION = Reproduction(
    name="selfplay-gridworld",
    description=("SB3 PPO self-play (snapshot pools) on 001's random gridworlds: exact exploitability of "
                 "the read-out policy over training, beside OMPO"),
    runner=run,
)
