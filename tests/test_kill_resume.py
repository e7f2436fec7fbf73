"""SIGKILL a tabular, a Markov, an LLM and an AIHF run at several moments; the files hold a whole state.

Each run goes in a forked child (the imports are paid once). It is killed either at a
chosen file event (just before or just after the k-th ``os.replace`` / ``os.rename`` /
folder swap, where a non-atomic writer would leave a mix) or by the parent after a delay.
The run folder must then hold the previous complete state or the new one, never a mix,
and the run resumes (or re-runs) to the same result as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import prefgym.fileio as fileio
from prefgym.agents import BaseAgent
from prefgym.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux",
                                reason="forks and SIGKILLs itself (Linux)")


def _arm(kill_at: tuple[int, str] | None) -> None:
    """In the child: SIGKILL this process before/after the k-th file event."""
    if kill_at is None:
        return
    k, when = kill_at
    count = [0]

    def hook(fn):
        def wrapped(*args, **kwargs):
            count[0] += 1
            hit = count[0] == k
            if hit and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            out = fn(*args, **kwargs)
            if hit and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return wrapped

    os.replace, os.rename = hook(os.replace), hook(os.rename)
    fileio._exchange = hook(fileio._exchange)


def _run_child(job: Callable[[], None], kill_at: tuple[int, str] | None = None,
               kill_after: float | None = None, timeout: float = 60.0) -> bool:
    """Run ``job`` in a forked child; return True if it was SIGKILLed, False if it finished."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(1)
            _arm(kill_at)
            job()
            code = 0
        finally:
            os._exit(code)
    start = time.monotonic()
    killed_by_us = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        elapsed = time.monotonic() - start
        if kill_after is not None and not killed_by_us and elapsed >= kill_after:
            os.kill(pid, signal.SIGKILL)
            killed_by_us = True
        if elapsed > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("child run hung")
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the child run failed"
    return False


def _snapshot(folder: Path) -> dict[str, object]:
    """Every file's bytes (a zip's: its members', since zip headers carry times)."""
    out: dict[str, object] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            if p.suffix == ".zip":
                with zipfile.ZipFile(p) as zf:
                    out[str(p.relative_to(folder))] = {n: zf.read(n) for n in zf.namelist()}
            else:
                out[str(p.relative_to(folder))] = p.read_bytes()
    return out


@pytest.fixture
def cheap_plots(monkeypatch):
    """The figures are not what is tested here: write a stand-in file instead (matplotlib takes ~0.5 s)."""
    import prefgym.plotting

    def plot_curves(curves, path, **kwargs):
        with fileio.atomic_write(path, "wb") as fh:
            fh.write(repr(sorted(curves)).encode())
        return Path(path)

    monkeypatch.setattr(prefgym.plotting, "plot_curves", plot_curves)


# ------------------------------------------------------------------ tabular and Markov CLI runs
CASES = {
    "tabular": ["train", "--agent", "omwu", "--lr", "0.5", "--seed", "0"],
    "markov": ["train", "--agent", "ompo", "--env", "prefgym/Gridworld-v0", "--lr", "1", "--seed", "0"],
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_killed_overwrite_leaves_the_old_run_or_the_new_one(kind, tmp_path, cheap_plots):
    out = tmp_path / "run"
    base = [*CASES[kind], "--out", str(out), "--no-progress"]
    assert main([*base, "--iterations", "4"]) == 0
    old = _snapshot(out)
    new_args = [*base, "--iterations", "7", "--overwrite"]
    ref = tmp_path / "ref"
    start = time.monotonic()  # in this process: the children then find every module imported
    assert main([*base[:-3], "--out", str(ref), "--no-progress", "--iterations", "7"]) == 0
    duration = time.monotonic() - start
    new = _snapshot(ref)
    seen = set()
    # every file event of the run (log rewrites in the staging folder, the publish, the pointer)
    kills = [((k, w), None) for k in range(1, 7) for w in ("before", "after")]
    kills += [(None, f * duration) for f in (0.3, 0.6, 0.9)]
    for kill_at, delay in kills:
        _run_child(lambda: main(new_args), kill_at=kill_at, kill_after=delay)
        now = _snapshot(out)
        if now == old:
            seen.add("old")
        else:  # the new run, whole: same files as the uninterrupted one (config differs in times only)
            assert set(now) == set(new), f"a mix after kill {kill_at or delay}: {sorted(now)}"
            for name in now:
                if name != "config.json":
                    assert now[name] == new[name], name
            assert json.loads(now["config.json"])["iterations"] == 7
            seen.add("new")
            assert main([*base, "--iterations", "4", "--overwrite"]) == 0  # back to the old run
            old = _snapshot(out)
        # resume: the saved agent continues to the same policy as an uninterrupted 7-iteration run
        agent = BaseAgent.load(out / "agent.zip")
        agent.learn(7 - agent.num_iterations)
        ref_agent = BaseAgent.load(ref / "agent.zip")
        assert np.array_equal(agent.policy, ref_agent.policy)
    assert seen == {"old", "new"}


# ------------------------------------------------------------------ LLM trainer
LLM_ARGS = ["train", "--agent", "omwu-llm", "--task", "menu", "--seed", "1", "--param", "save_every=1",
            "--no-progress"]


def _policy_tensors(run: Path, name: str):
    from safetensors.numpy import load_file

    return load_file(str(run / name / "policy" / "model.safetensors"))


def test_killed_llm_run_resumes_to_the_uninterrupted_result(tmp_path, cheap_plots):
    pytest.importorskip("transformers")
    from prefgym.agents.llm.trainer import SelfPlayTrainer

    ref = tmp_path / "ref"
    start = time.monotonic()
    assert main([*LLM_ARGS, "--iterations", "3", "--out", str(ref)]) == 0
    duration = time.monotonic() - start
    expected = _policy_tensors(ref, "checkpoint-000003")
    # file events of this run: 1 config.json, 2 trainer.json, 3 reference/, then per iteration
    # trainer_state.pt, trainer.json, checkpoint folder rename, latest (4-7, 8-11, 12-15), 16 config.json
    kills = [((k, w), None) for k, w in ((6, "before"), (7, "after"), (10, "after"))]
    kills += [(None, 0.3 * duration)]
    killed = 0
    for i, (kill_at, delay) in enumerate(kills):
        out = tmp_path / f"run{i}"
        killed += _run_child(lambda out=out: main([*LLM_ARGS, "--iterations", "3", "--out", str(out)]),
                             kill_at=kill_at, kill_after=delay)
        done = 0
        if (out / "latest").exists():  # a whole checkpoint, whatever the moment of the kill
            folder = SelfPlayTrainer.resolve_checkpoint(out)
            cfg = SelfPlayTrainer._read_config(folder)
            state = SelfPlayTrainer._read_state(folder)
            done = int(folder.name.split("-")[1])
            assert cfg["num_iterations"] == state["num_iterations"] == done
            args = ["train", "--resume", str(out), "--iterations", "3", "--no-progress"]
        else:  # killed before the first checkpoint: start again
            args = [*LLM_ARGS, "--iterations", "3", "--out", str(out), "--overwrite"]
        if done < 3:
            assert main(args) == 0
        got = _policy_tensors(out, "checkpoint-000003")
        assert all(np.array_equal(got[k], expected[k]) for k in expected)
    assert killed >= 3


# ------------------------------------------------------------------ AIHF
def _tiny_prefs():
    from prefgym.data.control import PreferencePairs

    rng = np.random.default_rng(0)
    n, L = 24, 5
    obs = rng.normal(size=(2, n, L, 3)).astype(np.float32)
    act = rng.uniform(-2, 2, size=(2, n, L, 1)).astype(np.float32)
    ret = -(obs[..., 0] ** 2).sum(-1)
    return PreferencePairs(obs_a=obs[0], act_a=act[0], mask_a=np.ones((n, L), bool), obs_b=obs[1],
                           act_b=act[1], mask_b=np.ones((n, L), bool), labels=(ret[0] > ret[1]).astype(float),
                           returns_a=ret[0], returns_b=ret[1], env_id="Pendulum-v1")


def test_killed_aihf_run_keeps_a_whole_agent_file_and_resumes(tmp_path):
    from prefgym.agents.aihf import AIHF

    prefs = _tiny_prefs()
    kwargs = {"mode": "rlhf", "reward_pretrain_steps": 2, "sac_steps_per_iter": 20, "seed": 0,
              "sac_kwargs": {"buffer_size": 400, "learning_starts": 10, "batch_size": 8,
                             "policy_kwargs": {"net_arch": [8]}}}
    path = tmp_path / "aihf.zip"

    def job():
        agent = AIHF("Pendulum-v1", preferences=prefs, **kwargs)
        for _ in range(4):
            agent.learn(20)
            agent.save(path)

    start = time.monotonic()
    job()
    duration = time.monotonic() - start
    path.unlink()
    kills = [((k, "before"), None) for k in (1, 3)] + [((2, "after"), None)]
    kills += [(None, f * duration) for f in (0.6, 0.9)]
    for kill_at, delay in kills:
        _run_child(job, kill_at=kill_at, kill_after=delay)
        if not path.exists():  # killed before the first save finished
            continue
        agent = AIHF.load(path, preferences=prefs)  # whole: never a half-written zip
        done = agent.num_iterations
        assert 1 <= done <= 4 and agent.sac.num_timesteps == agent.history[-1]["timesteps"] == 20 * done
        agent.learn(20)  # resume
        assert agent.num_iterations == done + 1 and agent.sac.num_timesteps == 20 * (done + 1)
        path.unlink()
