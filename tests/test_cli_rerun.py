"""`prefgym train --config RUN/config.json` reruns a saved run bit for bit."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from prefgym.agents import get_agent_class
from prefgym.cli import main


@pytest.fixture
def cheap_plots(monkeypatch):
    import prefgym.plotting

    def plot_curves(curves, path, **kwargs):  # the figure is not what these tests check
        path.write_bytes(b"")
        return path

    monkeypatch.setattr(prefgym.plotting, "plot_curves", plot_curves)


def _config(run):
    return json.loads((run / "config.json").read_text())


def _same_except(a: dict, b: dict, keys: set[str]) -> None:
    assert set(a) == set(b)
    assert {k: v for k, v in a.items() if k not in keys} == {k: v for k, v in b.items() if k not in keys}


@pytest.mark.parametrize(("agent", "env", "extra"), [
    ("omwu", "prefgym/MatrixGame-v0", ["--param", "learning_rate=0.3"]),
    ("ompo", "prefgym/GridworldRandom-v0", ["--env-kwargs", '{"seed": 3}']),
])
def test_tabular_and_markov_runs_rerun_bit_identically(tmp_path, cheap_plots, capsys, agent, env, extra):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--agent", agent, "--env", env, *extra, "--iterations", "15", "--out", str(first),
                 "--no-progress"]) == 0
    cfg = _config(first)
    assert isinstance(cfg["seed"], int)  # an unseeded run records the seed it drew
    assert main(["train", "--config", str(first / "config.json"), "--out", str(second), "--no-progress"]) == 0
    assert (first / "metrics.csv").read_bytes() == (second / "metrics.csv").read_bytes()
    with open(first / "metrics.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 15
    _same_except(cfg, _config(second), {"out", "created", "runtime_s"})
    cls = get_agent_class(agent)
    a, b = cls.load(first / "agent.zip"), cls.load(second / "agent.zip")
    assert a.seed == b.seed == cfg["seed"]
    np.testing.assert_array_equal(a.policy, b.policy)
    np.testing.assert_array_equal(a.average_policy, b.average_policy)
    assert "run folder" in capsys.readouterr().out


def test_a_seeded_run_keeps_its_params_and_a_folder_works_as_config(tmp_path, cheap_plots):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--agent", "omwu", "--seed", "5", "--iterations", "5", "--out", str(first),
                 "--no-progress"]) == 0
    assert _config(first)["agent_params"] == {"seed": 5} and _config(first)["seed"] == 5
    assert main(["train", "--config", str(first), "--out", str(second), "--no-progress"]) == 0
    assert (first / "metrics.csv").read_bytes() == (second / "metrics.csv").read_bytes()
    _same_except(_config(first), _config(second), {"out", "created", "runtime_s"})


def test_config_refuses_other_options_and_bad_files(tmp_path, cheap_plots, capsys):
    run = tmp_path / "run"
    assert main(["train", "--agent", "omwu", "--iterations", "3", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(run), "--iterations", "9"]) == 2
    assert "leave out --iterations" in capsys.readouterr().err
    assert main(["train", "--config", str(run), "--agent", "mpo"]) == 2
    assert "leave out --agent" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.json")]) == 2
    assert "cannot read it" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"algo": "SAC"}')
    assert main(["train", "--config", str(tmp_path / "other.json")]) == 2
    assert "not the config.json of a `prefgym train` run" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text('{"game_kind": "matrix", "agent": "omwu"}')
    assert main(["train", "--config", str(tmp_path / "broken.json")]) == 2
    assert "missing or malformed" in capsys.readouterr().err
    assert main(["train", "--config", str(run), "--out", str(run)]) == 2  # never over a run silently
    assert "--overwrite" in capsys.readouterr().err


def test_llm_run_reruns_to_the_same_weights_and_metrics(tmp_path, cheap_plots):
    pytest.importorskip("transformers")
    from safetensors.numpy import load_file

    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--agent", "omwu-llm", "--task", "menu", "--iterations", "1", "--param",
                 "steps_per_iteration=2", "--out", str(first), "--no-progress"]) == 0
    cfg = _config(first)
    assert cfg["trainer_config"]["steps_per_iteration"] == 2 and cfg["trainer_config"]["seed"] == 0
    assert json.loads((first / "trainer.json").read_text())["config"] == cfg["trainer_config"]
    assert main(["train", "--config", str(first / "config.json"), "--out", str(second), "--no-progress"]) == 0
    _same_except(cfg, _config(second), {"out", "created", "runtime_s", "final_metrics", "checkpoint",
                                        "trainer_config"})
    assert {**cfg["trainer_config"], "output_dir": None} == {**_config(second)["trainer_config"],
                                                             "output_dir": None}
    drop_time = [{k: v for k, v in r.items() if k != "time_s"} for r in (cfg["final_metrics"],
                                                                        _config(second)["final_metrics"])]
    assert drop_time[0] == drop_time[1] and np.isfinite(drop_time[0]["gap_mean"])

    def rows(run):
        with open(run / "metrics.csv") as fh:
            return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(fh)]

    assert rows(first) == rows(second) and len(rows(first)) == 1
    a = load_file(str(first / "checkpoint-000001" / "policy" / "model.safetensors"))
    b = load_file(str(second / "checkpoint-000001" / "policy" / "model.safetensors"))
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
