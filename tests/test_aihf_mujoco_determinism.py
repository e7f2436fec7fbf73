"""aihf-mujoco: the same seed gives the same numbers, in this process and in a fresh one."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("minari")

from prefgym.reproductions.aihf_mujoco import BUDGETS, _make_data, train_and_evaluate  # noqa: E402

KEYS = ("steps", "returns", "reward_rank_correlation", "last_reward_stats")


def test_same_seed_gives_identical_data_and_runs_in_process_and_in_a_spawned_worker(tmp_path):
    cfg = dict(BUDGETS["quick"], steps_per_checkpoint=200, demo_steps=200, n_pairs=100)
    data = _make_data(cfg, tmp_path / "a", progress=False)
    again = _make_data(cfg, tmp_path / "b", progress=False)  # the data pipeline, rerun
    for x, y in zip(data["demo_arrays"], again["demo_arrays"], strict=True):  # (observations, actions)
        assert np.array_equal(x, y)
    for a, b in zip(data["episodes"], again["episodes"], strict=True):
        assert np.array_equal(a.observations, b.observations) and a.metadata == b.metadata
    assert np.array_equal(data["prefs"].labels, again["prefs"].labels)
    assert np.array_equal(data["prefs"].returns_a, again["prefs"].returns_a)

    common = {k: cfg[k] for k in ("env", "env_kwargs", "sac_steps_per_iter", "reward_steps_per_iter",
                                  "reward_lr", "reward_pretrain_steps", "bc_steps")}
    jobs = [{**common, "mode": m, "seed": 3, "total_steps": 250, "eval_every": 250, "eval_episodes": 2,
             "demos": data["demo_arrays"], "prefs": data["prefs"], "test_episodes": data["episodes"][:6]}
            for m in ("aihf", "rlhf")]
    here = [train_and_evaluate(j) for j in jobs]  # after the data pipeline ran twice in this process
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        spawned = list(pool.map(train_and_evaluate, jobs))  # a fresh interpreter (the pool's start method)
    assert np.isfinite(here[0]["last_reward_stats"]["loss"])  # AIHF's reward was trained: float losses
    for a, b in zip(here, spawned, strict=True):
        for k in KEYS:
            assert a[k] == b[k], (a["mode"], k)  # bit for bit
