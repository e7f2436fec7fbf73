"""Speed of AIHF's inner SAC loop vs plain SB3 SAC, and the cost of reward relabelling.

Run from the repository root::

    python benchmarks/aihf_sac.py                        # Hopper-v5 and InvertedPendulum-v5
    python benchmarks/aihf_sac.py --envs Hopper-v5 --steps 3000 --rounds 3

Three learners on the same env, with the same SAC settings
(:data:`~prefgym.agents.aihf.DEFAULT_SAC_KWARGS`: (64, 64) nets, batch 100,
lr 3e-3, fixed entropy 0.2, one gradient step per env step) and the same seed,
timed side by side in one process:

- ``sac``: plain ``stable_baselines3.SAC`` with SB3's ``ReplayBuffer`` (true rewards);
- ``aihf_inner``: ``AIHF(...).sac.learn``, the policy-alignment step alone: SAC whose
  replay buffer relabels every sampled minibatch with the reward net;
- ``aihf_full``: ``AIHF(...).learn`` in ``"aihf"`` mode, inner loop plus the reward
  alignment (``reward_steps_per_iter`` Adam steps on demonstrations and preferences)
  every ``sac_steps_per_iter`` env steps (here 1000, so that each timed chunk includes
  reward steps; 004 uses 5000, which makes their share 5x smaller).

Each learner first runs ``--warmup`` steps (past SAC's ``learning_starts`` = 100, so
every timed step has a gradient step); then ``--rounds`` rounds, each timing
``--steps`` env steps of every learner in turn (interleaved, so drift of a shared
machine hits all three alike). The table gives the median over rounds of env steps
per second and the ratio of each learner's time per step to plain SAC's.

Relabelling cost: the time of ``replay_buffer.sample(100)`` with and without the
reward function attached (best of ``--sample-repeats`` blocks of 200 calls), and
of the reward net's forward pass alone.

Demonstrations and preferences are synthetic (random transitions of the env's
shapes): their values do not change the cost. Torch runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium
import numpy as np
import torch
from stable_baselines3 import SAC

from prefgym.agents.aihf import AIHF, DEFAULT_SAC_KWARGS
from prefgym.data.control import PreferencePairs


def synthetic_data(env_id: str, n_demo: int = 2000, n_pairs: int = 200, L: int = 50, seed: int = 0):
    """Random demonstrations ``(obs, act)`` and preference pairs with the env's shapes."""
    env = gymnasium.make(env_id)
    rng = np.random.default_rng(seed)
    od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    lo, hi = env.action_space.low, env.action_space.high
    env.close()
    demos = (rng.standard_normal((n_demo, od)).astype(np.float32),
             rng.uniform(lo, hi, (n_demo, ad)).astype(np.float32))

    def seg():
        return (rng.standard_normal((n_pairs, L, od)).astype(np.float32),
                rng.uniform(lo, hi, (n_pairs, L, ad)).astype(np.float32))

    (oa, aa), (ob, ab) = seg(), seg()
    mask = np.ones((n_pairs, L), bool)
    prefs = PreferencePairs(oa, aa, mask, ob, ab, mask.copy(), rng.integers(0, 2, n_pairs).astype(float),
                            np.zeros(n_pairs), np.zeros(n_pairs), env_id=env_id)
    return demos, prefs


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_env(env_id: str, steps: int, rounds: int, warmup: int, sample_repeats: int, seed: int = 0) -> dict:
    """Steps/s of the three learners and the relabelling cost on ``env_id``."""
    demos, prefs = synthetic_data(env_id, seed=seed)
    sac = SAC("MlpPolicy", gymnasium.make(env_id), seed=seed, **DEFAULT_SAC_KWARGS)
    inner = AIHF(env_id, demonstrations=demos, preferences=prefs, seed=seed)
    full = AIHF(env_id, demonstrations=demos, preferences=prefs, seed=seed, sac_steps_per_iter=1000)
    runners = {
        "sac": lambda n: sac.learn(n, reset_num_timesteps=False),
        "aihf_inner": lambda n: inner.sac.learn(n, reset_num_timesteps=False),
        "aihf_full": lambda n: full.learn(n),
    }
    for run in runners.values():
        run(warmup)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, run in runners.items():
            times[k].append(_time(lambda run=run: run(steps)))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"env": env_id, "steps_per_round": steps, "rounds": rounds,
           "steps_per_s": {k: steps / v for k, v in med.items()},
           "ratio_to_sac": {k: v / med["sac"] for k, v in med.items()},
           "round_seconds": times}

    # relabelling cost per sampled batch (one per gradient step, i.e. per env step here)
    rb = inner.sac.replay_buffer
    bs = DEFAULT_SAC_KWARGS["batch_size"]
    fn = rb.reward_fn

    def block(n=200):
        return _time(lambda: [rb.sample(bs) for _ in range(n)]) / n

    with_r, without_r = [], []
    for _ in range(sample_repeats):
        rb.reward_fn = None
        without_r.append(block())
        rb.reward_fn = fn
        with_r.append(block())
    batch = rb.sample(bs)
    with torch.no_grad():
        net = inner.reward_net
        fwd = min(_time(lambda: [net(batch.observations, batch.actions) for _ in range(200)]) / 200
                  for _ in range(sample_repeats))
    step_s = med["aihf_inner"] / steps
    out["relabel"] = {"sample_s_true_reward": min(without_r), "sample_s_relabelled": min(with_r),
                      "relabel_s_per_step": min(with_r) - min(without_r), "reward_forward_s": fwd,
                      "share_of_inner_step": (min(with_r) - min(without_r)) / step_s}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "InvertedPendulum-v5"])
    p.add_argument("--steps", type=int, default=1000, help="env steps per learner per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--sample-repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    print("| env | plain SAC steps/s | AIHF inner steps/s | AIHF full steps/s | inner / SAC time | "
          "full / SAC time | relabel us/step | relabel share |")
    print("|---|---|---|---|---|---|---|---|")
    for env_id in args.envs:
        r = bench_env(env_id, args.steps, args.rounds, args.warmup, args.sample_repeats)
        results.append(r)
        s, q, rl = r["steps_per_s"], r["ratio_to_sac"], r["relabel"]
        print(f"| {env_id} | {s['sac']:.0f} | {s['aihf_inner']:.0f} | {s['aihf_full']:.0f} | "
              f"{q['aihf_inner']:.3f}x | {q['aihf_full']:.3f}x | {1e6 * rl['relabel_s_per_step']:.0f} "
              f"(forward {1e6 * rl['reward_forward_s']:.0f}) | {100 * rl['share_of_inner_step']:.1f}% |",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
