"""The ``prefgym`` command line, end to end through ``main([...])`` in a temporary folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from prefgym.agents import OMWU, BaseAgent
from prefgym.cli import DEFAULT_ENV, DEFAULT_ENV_KWARGS, env_ids, evaluate, game_from_env, main
from prefgym.games import planted_nash
from prefgym.reproductions import REPRODUCTIONS

RUN_FILES = {"config.json", "metrics.csv", "agent.zip", "gap.png"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "omwu-run"
    code = main(["train", "--agent", "omwu", "--iterations", "300", "--lr", "2", "--seed", "3",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def _read_metrics(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def test_train_writes_run_folder_consistent_with_agent(run_dir, capsys):
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"] == "omwu" and config["env"] == DEFAULT_ENV
    assert config["env_kwargs"] == DEFAULT_ENV_KWARGS
    assert config["agent_params"] == {"learning_rate": 2.0, "seed": 3}
    metrics = _read_metrics(run_dir / "metrics.csv")
    np.testing.assert_array_equal(metrics["iteration"], np.arange(1, 301))
    # the saved agent's history and an independent run on the same game agree exactly
    agent = BaseAgent.load(run_dir / "agent.zip")
    assert isinstance(agent, OMWU) and agent.num_iterations == 300
    np.testing.assert_array_equal(metrics["last_gap"], agent.history["last_gap"])
    np.testing.assert_array_equal(metrics["average_gap"], agent.history["average_gap"])
    fresh = OMWU(game_from_env(DEFAULT_ENV, DEFAULT_ENV_KWARGS), learning_rate=2.0).learn(300)
    np.testing.assert_array_equal(metrics["last_gap"], fresh.history["last_gap"])
    assert config["final_last_gap"] == metrics["last_gap"][-1]
    # OMWU made progress on the planted game in 300 updates
    assert metrics["last_gap"][-1] < 0.5 * metrics["last_gap"][0]


def test_evaluate_reports_gaps_and_nash(run_dir, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "duality gap: last iterate" in out and "LP Nash equilibrium" in out
    res = evaluate(run_dir / "agent.zip")
    metrics = _read_metrics(run_dir / "metrics.csv")
    (game,) = res["games"]
    assert game["last_gap"] == pytest.approx(metrics["last_gap"][-1], rel=1e-12)
    assert game["average_gap"] == pytest.approx(metrics["average_gap"][-1], rel=1e-12)
    # the planted game has a polytope of equilibria: the set distance is at most the LP-point one
    assert 0 <= game["last_l1_to_ne_set"] <= game["last_l1_to_lp_ne"] + 1e-12
    assert np.isclose(sum(game["nash_equilibrium"]), 1.0)


def test_evaluate_batched_agent(tmp_path):
    game = planted_nash(5, rank=2, seed=1, batch=2)
    path = OMWU(game, learning_rate=1.0).learn(50).save(tmp_path / "batch.zip")
    res = evaluate(path)
    assert res["batch_shape"] == [2] and len(res["games"]) == 2
    gaps = game.duality_gap(OMWU(game, learning_rate=1.0).learn(50).policy)
    np.testing.assert_allclose([g["last_gap"] for g in res["games"]], gaps, rtol=1e-12)


def test_list_prints_envs_agents_and_reproductions(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    from prefgym.algorithms import SPECS

    for name, spec in SPECS.items():  # one line per algorithm, from the registry
        assert f"  {name} " in out and spec.title in out
    for name in REPRODUCTIONS:
        assert name in out
    for env_id in env_ids():
        assert env_id in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--agent", "no-such-agent"], "unknown agent 'no-such-agent'"),
        (["train", "--param", "alpha"], "--param expects key=value"),
        (["train", "--agent", "mmd", "--param", "bogus=1"], "unknown hyper-parameters ['bogus']"),
        (["train", "--lr", "-1"], "learning_rate must be a positive number"),
        (["train", "--env", "prefgym/NoSuchGame-v0"], "cannot make environment"),
        (["train", "--env-kwargs", "{oops"], "--env-kwargs is not valid JSON"),
        (["train", "--env-kwargs", '{"generator": "nope"}'], "unknown game generator 'nope'"),
        (["evaluate", "no/such/run"], "no saved agent"),
        (["reproduce", "no-such-figure"], "unknown reproduction"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main([*argv, "--out", str(out)] if argv[0] == "train" else argv)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_argparse_errors_return_2(capsys):
    assert main([]) == 2
    assert main(["train", "--iterations", "many"]) == 2
    assert "invalid int value" in capsys.readouterr().err


def test_reproduce_command_writes_outputs(tmp_path, capsys):
    out = tmp_path / "fig3"
    assert main(["reproduce", "mpo-fig3", "--quick", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "verdicts:" in text and "MPO" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True
    for name in ("mpo_fig3_simplex.png", "mpo_fig3_gap.png", "mpo_fig3_curves.csv"):
        assert (out / name).stat().st_size > 0


# ------------------------------------------------------------------ Markov games
MARKOV_COLUMNS = ["iteration", "exploitability", "average_exploitability"]


@pytest.fixture(scope="module")
def markov_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ompo-grid"
    code = main(["train", "--agent", "ompo", "--env", "prefgym/GridworldRandom-v0", "--env-kwargs",
                 '{"seed": 3}', "--iterations", "60", "--lr", "10", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_markov_env_writes_exploitability_metrics(markov_run):
    from prefgym.agents import OMPO
    from prefgym.games.gridworld import random_gridworld

    assert RUN_FILES <= {p.name for p in markov_run.iterdir()}
    config = json.loads((markov_run / "config.json").read_text())
    assert config["game_kind"] == "markov" and config["env_kwargs"] == {"seed": 3}
    assert config["metrics_columns"] == ",".join(MARKOV_COLUMNS)
    with open(markov_run / "metrics.csv") as fh:
        assert next(csv.reader(fh)) == MARKOV_COLUMNS
    metrics = _read_metrics(markov_run / "metrics.csv")
    np.testing.assert_array_equal(metrics["iteration"], np.arange(1, 61))
    # '{"seed": 3}' is random_gridworld(seed=3): an independent run on it gives the same curves
    game = random_gridworld(seed=3)
    assert (config["n_states"], config["n_actions"], config["horizon"]) == (
        game.n_states, game.n_actions, game.horizon)
    fresh = OMPO(game, learning_rate=10.0).learn(60)
    np.testing.assert_array_equal(metrics["exploitability"], fresh.history["exploitability"])
    np.testing.assert_array_equal(metrics["average_exploitability"], fresh.history["average_exploitability"])
    assert config["final_exploitability"] == metrics["exploitability"][-1]
    assert config["final_average_gap"] == pytest.approx(2 * metrics["average_exploitability"][-1])
    assert metrics["average_exploitability"][-1] < 0.5 * metrics["average_exploitability"][0]


def test_evaluate_markov_agent_prints_exploitability(markov_run, capsys):
    assert main(["evaluate", str(markov_run)]) == 0
    out = capsys.readouterr().out
    assert "exploitability: last iterate" in out and "duality gap: last iterate" in out
    assert "LP Nash" not in out
    res = evaluate(markov_run)
    metrics = _read_metrics(markov_run / "metrics.csv")
    assert res["game_kind"] == "markov" and res["updates"] == 60
    assert res["last_exploitability"] == pytest.approx(metrics["exploitability"][-1], rel=1e-9, abs=1e-15)
    assert res["average_exploitability"] == pytest.approx(metrics["average_exploitability"][-1], rel=1e-9)
    assert res["average_gap"] == pytest.approx(2 * res["average_exploitability"])


def test_train_hand_made_gridworld_and_errors(tmp_path, capsys):
    out = tmp_path / "mpo-ac"
    assert main(["train", "--agent", "mpo_ac", "--env", "prefgym/Gridworld-v0", "--iterations", "20",
                 "--out", str(out), "--no-progress"]) == 0
    assert "final exploitability" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (config["n_states"], config["n_actions"], config["horizon"]) == (25, 5, 8)
    assert game_from_env("prefgym/GridworldRandom-v0", {}).n_states == \
        game_from_env("prefgym/GridworldRandom-v0", {"seed": 0}).n_states
    small = game_from_env("prefgym/GridworldRandom-v0", {"n_states": 4, "n_actions": 2, "horizon": 3})
    assert (small.n_states, small.n_actions, small.horizon) == (4, 2, 3)
    bad = tmp_path / "bad"
    assert main(["train", "--agent", "omwu", "--env", "prefgym/Gridworld-v0", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "is a Markov game" in err and len(err.strip().splitlines()) == 1 and not bad.exists()
    assert main(["train", "--agent", "ompo", "--env", "prefgym/GridworldRandom-v0", "--env-kwargs",
                 '{"no_such_arg": 1}', "--out", str(bad)]) == 2
    assert "cannot make environment" in capsys.readouterr().err
