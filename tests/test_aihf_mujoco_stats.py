"""aihf-mujoco's interval verdicts and three-task aggregate, on synthetic summaries (no training)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rliable", reason="rliable is not installed (pip install 'prefgym[rliable]')")

from prefgym.errors import InvalidArgumentError  # noqa: E402
from prefgym.reproductions.aihf_mujoco_stats import (  # noqa: E402
    CLAIMS,
    TASKS,
    aggregate,
    aggregate_folders,
    interval_verdicts,
    task_scores,
)

MODES = ("aihf", "rlhf", "irl")
ROOT = Path(__file__).resolve().parents[1]


def fake_summary(env, seeds=5, finals=None, evals=4, rlhf_start=150.0, seed=0):
    """An aihf-mujoco summary whose runs end at ``finals[mode][seed]`` (both last evaluations)."""
    rng = np.random.default_rng(seed)
    finals = finals or {m: rng.normal(mu, 20.0, seeds) for m, mu in (("aihf", 300), ("rlhf", 100),
                                                                      ("irl", 200))}
    runs = []
    for s in range(seeds):
        for m in MODES:
            start = rlhf_start if m == "rlhf" else 20.0 + s  # random-init learners start near 20
            curve = np.r_[start, np.linspace(start, finals[m][s], evals - 2)[1:], finals[m][s], finals[m][s]]
            runs.append({"mode": m, "seed": s, "steps": list(range(0, 1000 * evals, 1000)),
                         "returns": np.repeat(curve[:, None], 3, axis=1).tolist(),
                         "reward_rank_correlation": 0.5})
    table = {row: {"mean_return": r, "std_return": 1.0, "n": 4}
             for row, r in (("non_prefer", 100.0), ("prefer", 200.0), ("demonstration", 420.0))}
    return {"reproduction": "aihf-mujoco", "settings": {"env": env}, "runs": runs, "data_quality": table}


def test_task_scores_final_and_normalised_returns():
    finals = {"aihf": np.array([300.0, 310, 320]), "rlhf": np.array([150.0, 160, 170]),
              "irl": np.array([100.0, 90, 80])}
    t = task_scores(fake_summary("Hopper-v5", seeds=3, finals=finals))
    assert np.array_equal(t["final"]["aihf"], finals["aihf"])  # mean of the last two evaluations
    assert t["random"] == pytest.approx(21.0)  # step-0 mean of aihf and irl runs: 20, 21, 22
    assert t["demonstration"] == 420.0
    assert np.allclose(t["normalised"]["irl"], (finals["irl"] - 21.0) / 399.0)
    assert np.allclose(t["rlhf_gain"], (finals["rlhf"] - 150.0) / 399.0)
    assert t["curves"]["rlhf"].shape == (4, 3)


def test_verdicts_follow_the_interval_rule():
    # AIHF beats RLHF in every run pair -> P = 1, interval [1, 1] -> held;
    # AIHF vs IRL interleaved -> the interval straddles 1/2 -> inconclusive
    finals = {"aihf": np.array([300.0, 310, 320, 330, 340]), "rlhf": np.array([100.0, 110, 120, 130, 140]),
              "irl": np.array([295.0, 315, 305, 335, 325])}
    v, numbers = interval_verdicts([task_scores(fake_summary("Hopper-v5", finals=finals))], reps=2000)
    assert v[CLAIMS["i"]].startswith("held: P(AIHF > RLHF) = 1.000 [1.000, 1.000]")
    assert v[CLAIMS["ii"]].startswith("inconclusive")
    p = numbers["probability_of_improvement"]["aihf>irl"]
    # hand count: 300 beats 1 IRL run, 310 beats 2, 320 3, 330 4, 340 5 -> 15 of 25 pairs
    assert p["point"] == pytest.approx(15 / 25) and p["low"] < 0.5 < p["high"]
    # RLHF gains (100..140 - 150) / 399 < 0 < 0.1 in every run -> (iii) held
    assert v[CLAIMS["iii"]].startswith("held")
    assert v[CLAIMS["iv"]].startswith("held")
    # the reverse: RLHF beats AIHF everywhere -> did not hold
    swapped = {"aihf": finals["rlhf"], "rlhf": finals["aihf"], "irl": finals["irl"]}
    v2, _ = interval_verdicts([task_scores(fake_summary("Hopper-v5", finals=swapped))], reps=2000)
    assert v2[CLAIMS["i"]].startswith("did not hold")
    assert v2[CLAIMS["iii"]].startswith("did not hold")  # gains (300..340 - 150) / 399 > 0.1


def test_fewer_than_three_seeds_is_inconclusive_by_rule():
    v, _ = interval_verdicts([task_scores(fake_summary("Hopper-v5", seeds=2))], reps=200)
    for key in ("i", "ii", "iii"):
        assert v[CLAIMS[key]].startswith("inconclusive") and "by rule" in v[CLAIMS[key]]


def test_aggregate_over_three_tasks_writes_figures_tables_and_is_seeded(tmp_path):
    sums = [fake_summary(env, seed=i) for i, env in enumerate(reversed(TASKS))]
    r = aggregate(sums, tmp_path, reps=1000)
    assert list(r["tasks"]) == list(TASKS)  # Figure 5's order whatever the input order
    assert r["all_tasks"]["tasks"] == list(TASKS) and r["verdicts"] == r["all_tasks"]["verdicts"]
    for name in ("aihf_mujoco_tasks.png", "aihf_mujoco_intervals.png", "aihf_mujoco_aggregate.csv",
                 "aihf_mujoco_table1.csv", "aihf_mujoco_aggregate.json"):
        assert (tmp_path / name).stat().st_size > 0
    rows = (tmp_path / "aihf_mujoco_aggregate.csv").read_text().splitlines()
    assert rows[0].startswith("scope,quantity,method,point,low,high")
    assert sum(r.startswith("all,probability_of_improvement,aihf>rlhf") for r in rows) == 1
    assert len((tmp_path / "aihf_mujoco_table1.csv").read_text().splitlines()) == 1 + 3 * 3
    again = aggregate(sums, None, reps=1000)
    assert again["all_tasks"]["iqm_normalised_final"] == r["all_tasks"]["iqm_normalised_final"]
    # across tasks P(AIHF > X) is the mean of the per-task P's
    per_task = [r["tasks"][e]["probability_of_improvement"]["aihf>irl"]["point"] for e in TASKS]
    overall = r["all_tasks"]["probability_of_improvement"]["aihf>irl"]["point"]
    assert overall == pytest.approx(np.mean(per_task))


def test_aggregate_script_reads_task_folders(tmp_path):
    for i, env in enumerate(TASKS):
        (tmp_path / env).mkdir()
        (tmp_path / env / "summary.json").write_text(json.dumps(fake_summary(env, seed=i)))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "aihf_mujoco_aggregate.py"),
                          *(str(tmp_path / e) for e in TASKS), "--out", str(tmp_path), "--reps", "500"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "== across Hopper-v5, HalfCheetah-v5, Walker2d-v5" in out.stdout
    saved = json.loads((tmp_path / "aihf_mujoco_aggregate.json").read_text())
    assert saved["folders"] == [str(tmp_path / e) for e in TASKS]
    with pytest.raises(InvalidArgumentError, match="no summary.json"):
        aggregate_folders([tmp_path / "nowhere"], tmp_path)


def test_env_all_reuses_task_folders_with_the_same_settings(tmp_path):
    pytest.importorskip("mujoco")
    from prefgym.reproductions import get_reproduction
    from prefgym.reproductions.aihf_mujoco import _config, _settings, reusable_task_summary
    from prefgym.serialization import json_default

    for i, env in enumerate(TASKS):
        s = fake_summary(env, seed=i)
        settings = _settings(_config("small", env), "small")
        s["settings"] = json.loads(json.dumps(settings, default=json_default))
        (tmp_path / env).mkdir()
        (tmp_path / env / "summary.json").write_text(json.dumps(s))
    assert reusable_task_summary(tmp_path / "Hopper-v5", "paper", "Hopper-v5") is None  # other settings
    summary = get_reproduction("aihf-mujoco").run(tmp_path, progress=False, budget="small", env="all")
    assert summary["reused_task_folders"] == list(TASKS)  # nothing was trained
    assert set(summary["verdicts"]) == set(CLAIMS.values())
    assert (tmp_path / "aihf_mujoco_tasks.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())["env"] == "all"
