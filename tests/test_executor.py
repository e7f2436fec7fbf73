"""Sweep executors: the local process pool and Ray give the same results, in job order."""

import importlib.util
import os

import numpy as np
import pytest

from prefgym.errors import InvalidArgumentError, MissingExtraError
from prefgym.reproductions.aihf_examples import algorithm1_job, theorem41_curve
from prefgym.reproductions.executor import LocalExecutor, RayExecutor, Resources, make_executor

HAS_RAY = importlib.util.find_spec("ray") is not None
requires_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'prefgym[ray]')")

# a small sweep (K x seed) of tabular Algorithm 1, the stand-in for a reproduction's method x seed runs
JOBS = [{"K": K, "seed": s, "alpha0": 1.0, "batch": 8} for s in (0, 1) for K in (20, 5)]


def test_local_pool_returns_results_in_job_order_and_equal_to_serial():
    serial = LocalExecutor(1).run(algorithm1_job, JOBS)
    seen = []
    pooled = LocalExecutor(2).run(algorithm1_job, JOBS, on_result=seen.append)
    assert pooled == serial and len(seen) == len(JOBS)
    assert [(r["K"], r["seed"]) for r in pooled] == [(j["K"], j["seed"]) for j in JOBS]
    assert LocalExecutor(2).describe() == {"executor": "process", "workers": 2}


def test_make_executor_validates_its_arguments():
    with pytest.raises(InvalidArgumentError, match="executor must be one of"):
        make_executor("dask")
    with pytest.raises(InvalidArgumentError, match="--executor ray"):
        make_executor("process", address="auto")
    with pytest.raises(InvalidArgumentError, match="workers"):
        LocalExecutor(0)
    with pytest.raises(InvalidArgumentError, match="num_gpus"):
        Resources(num_gpus=-1)


@pytest.mark.skipif(HAS_RAY, reason="ray is installed")
def test_ray_executor_without_ray_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"prefgym\[ray\]"):
        make_executor("ray")


@requires_ray
def test_local_ray_instance_on_2_cpus_gives_the_process_pool_results():
    pooled = LocalExecutor(1).run(algorithm1_job, JOBS)  # = the pool's (test above), without its start-up
    ray_exec = make_executor("ray", resources=Resources(num_cpus=1), num_cpus=2)
    assert isinstance(ray_exec, RayExecutor)
    via_ray = ray_exec.run(algorithm1_job, JOBS)
    assert via_ray == pooled  # bit-identical numbers, job order
    curve = theorem41_curve((5, 20), batch=8)  # the reproduction's own sweep path
    assert np.allclose(curve["grad_norm_sq"], [r["grad_norm_sq"] for r in pooled[:2]][::-1])


@requires_ray
@pytest.mark.skipif(os.environ.get("PREFGYM_SLOW_TESTS") != "1",
                    reason="two aihf-mujoco --quick sweeps (254 s on a shared 2-core machine): "
                           "set PREFGYM_SLOW_TESTS=1")
def test_aihf_mujoco_quick_sweep_through_ray_matches_the_process_pool(tmp_path):
    pytest.importorskip("mujoco")
    from prefgym.reproductions import get_reproduction

    rep = get_reproduction("aihf-mujoco")
    a = rep.run(tmp_path / "process", quick=True, progress=False, executor="process")
    b = rep.run(tmp_path / "ray", quick=True, progress=False, executor="ray")
    for m in a["true_return"]:
        assert np.array_equal(a["true_return"][m]["per_seed"], b["true_return"][m]["per_seed"])
    assert (tmp_path / "process" / "aihf_mujoco_curves.csv").read_text() == \
        (tmp_path / "ray" / "aihf_mujoco_curves.csv").read_text()
