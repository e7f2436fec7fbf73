"""``prefgym train --algo`` / ``prefgym evaluate`` on SB3 runs: YAML defaults, overrides, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

from prefgym.cli import main  # noqa: E402
from prefgym.cli_sb3 import ALGOS, load_hyperparams, parse_overrides  # noqa: E402
from prefgym.errors import InvalidArgumentError  # noqa: E402

GRID = ["--env", "prefgym/GridworldRandom-v0", "--env-kwargs", '{"seed": 11}']


class RaisingCallback(BaseCallback):
    """A user callback that fails on its third step."""

    def _on_step(self) -> bool:
        if self.n_calls >= 3:
            raise RuntimeError("disk full")
        return True


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("algo", ["ppo", "sac", "aihf"])
def test_every_shipped_entry_loads(algo):
    import yaml

    from prefgym.cli import env_ids

    text = (Path(__file__).parents[1] / "prefgym" / "hyperparams" / f"{algo}.yml").read_text()
    ids = [k for k in yaml.safe_load(text) if k.startswith("prefgym/")]
    assert ids and set(ids) <= set(env_ids())
    for env_id in ids:
        hp = load_hyperparams(algo, env_id)
        assert hp["n_timesteps"] >= 1000
    assert "prefgym/HopperPreference-v0" in ids


def test_overrides_parse_and_nest():
    assert parse_overrides(["n_steps=64", "learning_rate=1e-3", "selfplay.pool_size=3", "policy_kwargs="
                            "{net_arch: [8]}"]) == {"n_steps": 64, "learning_rate": 1e-3,
                                                     "selfplay": {"pool_size": 3},
                                                     "policy_kwargs": {"net_arch": [8]}}
    hp = load_hyperparams("ppo", "prefgym/RPS-v0", parse_overrides(["selfplay.pool_size=3", "n_steps=64"]))
    assert hp["selfplay"]["pool_size"] == 3 and hp["selfplay"]["sampling"] == "uniform"
    assert hp["n_steps"] == 64
    with pytest.raises(InvalidArgumentError, match="key=value"):
        parse_overrides(["n steps=3"])


def test_train_gridworld_selfplay_and_evaluate(tmp_path, capsys, one_thread):
    out, tb = tmp_path / "run", tmp_path / "tb"
    rc = main(["train", "--algo", "ppo", *GRID, "--hyperparams", "n_timesteps=1024", "n_steps=128",
               "checkpoint_every=512", "selfplay.snapshot_every=512", "exploitability_every=512",
               "--seed", "0", "--out", str(out), "--tensorboard-log", str(tb), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "sb3" and cfg["timesteps_done"] == 1024 and cfg["snapshots"] == 3
    rows = list(csv.DictReader(open(out / "exploitability.csv")))
    assert [int(r["step"]) for r in rows] == [0, 512, 1024]
    assert float(rows[-1]["exploitability"]) == pytest.approx(cfg["final_exploitability"])
    assert f"{cfg['final_exploitability']:.4g}" in printed
    header = next(csv.reader(open(out / "metrics.csv")))
    assert "selfplay/exploitability" in header and "train/entropy_loss" in header
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["model_1024_steps.zip",
                                                                       "model_512_steps.zip"]
    # checkpoints hold no pickle: prefgym's JSON + safetensors format, loaded without trust_remote_code
    from prefgym.sb3_files import is_prefgym_sb3_file, load_sb3_model

    ckpt = out / "checkpoints" / "model_1024_steps.zip"
    assert is_prefgym_sb3_file(ckpt) and load_sb3_model(ckpt).num_timesteps == 1024
    assert list(tb.rglob("events.out.tfevents.*"))
    # evaluate rebuilds the learner from the safetensors weights: same exact exploitability
    assert main(["evaluate", str(out), "--episodes", "4"]) == 0
    text = capsys.readouterr().out
    assert "return over 4 episodes" in text
    assert f"exact exploitability: {cfg['final_exploitability']:.4g}" in text


def test_train_continuous_selfplay_sac(tmp_path, capsys, one_thread):
    out = tmp_path / "sac"
    assert main(["train", "--algo", "sac", "--env", "prefgym/PendulumPreference-v0", "--env-kwargs",
                 '{"horizon": 20, "segment_length": 10}', "--hyperparams", "n_timesteps=60",
                 "learning_starts=20", "batch_size=16", "selfplay.snapshot_every=30", "--out", str(out),
                 "--no-progress"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["snapshots"] == 3 and cfg["timesteps_done"] == 60
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0
    assert "true task return" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--algo", "reinforce", "--env", "prefgym/RPS-v0"], "unknown --algo 'reinforce'"),
    (["--algo", "ppo", "--env", "prefgym/Nope-v0"], "unknown env 'prefgym/Nope-v0'"),
    (["--algo", "ppo", "--env", "prefgym/RPS-v0", "--hyperparams", "n_stepz=3"],
     "unknown hyper-parameter 'n_stepz' for ppo"),
    (["--algo", "ppo", "--env", "prefgym/RPS-v0", "--hyperparams", "gamma=high"], "gamma must be a number"),
    (["--algo", "ppo", "--env", "prefgym/RPS-v0", "--hyperparams", "selfplay.sampling=3"],
     "selfplay.sampling must be str"),
    (["--algo", "sac", "--env", "prefgym/RPS-v0"], "sac.yml has no entry for 'prefgym/RPS-v0'"),
    (["--algo", "ppo", "--env", "prefgym/Dialogue-v0"], "observes and acts in text"),
    (["--algo", "aihf", "--env", "prefgym/HopperPreference-v0"], "needs --hyperparams demonstrations="),
    (["--algo", "ppo", "--agent", "omwu", "--env", "prefgym/RPS-v0"], "--agent applies to prefgym's own"),
])
def test_bad_input_is_one_line(argv, match, capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *argv, "--out", str(out), "--no-progress"]) == 2
    assert match in _error_line(capsys)
    assert not out.exists()


def test_yaml_file_with_a_wrong_type(tmp_path, capsys):
    conf = tmp_path / "my.yml"
    conf.write_text("prefgym/RPS-v0:\n  n_timesteps: 100\n  n_steps: many\n")
    out = tmp_path / "run"
    assert main(["train", "--algo", "ppo", "--env", "prefgym/RPS-v0", "--conf-file", str(conf),
                 "--out", str(out)]) == 2
    assert _error_line(capsys).endswith("my.yml [prefgym/RPS-v0]: n_steps must be an integer; got str 'many'")
    conf.write_text("prefgym/RPS-v0: [1, 2\n")
    assert main(["train", "--algo", "ppo", "--env", "prefgym/RPS-v0", "--conf-file", str(conf)]) == 2
    assert "is not valid YAML" in _error_line(capsys)
    conf.write_text("prefgym/RPS-v0:\n  n_timesteps: 64\n  n_steps: 32\n")
    dqn = tmp_path / "dqn.yml"
    dqn.write_text("prefgym/PendulumPreference-v0:\n  n_timesteps: 64\n")
    assert main(["train", "--algo", "dqn", "--env", "prefgym/PendulumPreference-v0", "--conf-file",
                 str(dqn), "--out", str(out)]) == 2
    assert "needs a Discrete action space" in _error_line(capsys)
    assert not out.exists()


def test_nothing_is_written_over_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("earlier")
    assert main(["train", "--algo", "ppo", "--env", "prefgym/RPS-v0", "--hyperparams", "n_timesteps=64",
                 "--out", str(out), "--no-progress"]) == 2
    assert "is not empty" in _error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert (out / "config.json").read_text() == "earlier"


def test_a_callback_that_raises_is_reported(tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    assert main(["train", "--algo", "ppo", "--env", "prefgym/RPS-v0", "--hyperparams", "n_timesteps=256",
                 "n_steps=64", "batch_size=64", "n_envs=1", f"callback={__name__}.RaisingCallback",
                 "--out", str(out),
                 "--no-progress"]) == 2
    line = _error_line(capsys)
    assert "training stopped at" in line and "RuntimeError: disk full" in line
    assert not (out / "config.json").exists() and not (out / "policy.safetensors").exists()
    assert main(["train", "--algo", "ppo", "--env", "prefgym/RPS-v0", "--hyperparams",
                 "callback=no.such.Callback", "--out", str(tmp_path / "other")]) == 2
    assert "cannot import callback 'no.such.Callback'" in _error_line(capsys)


def test_algos_listed():
    assert {"ppo", "sac", "aihf"} <= set(ALGOS)


def test_train_aihf_on_a_control_id(tmp_path, capsys, monkeypatch, one_thread):
    pytest.importorskip("minari")
    from prefgym.data.control import (
        build_preference_pairs,
        make_checkpoint_rollouts,
        make_demonstrations,
        scripted_policy,
    )

    root = tmp_path / "minari"
    policies = [(100 * (k + 1), scripted_policy("Pendulum-v1", n, k)) for k, n in enumerate([4.0, 1.0, 0.0])]
    ds = make_checkpoint_rollouts("Pendulum-v1", policies, steps_per_checkpoint=200, root=root, seed=0)
    demos = make_demonstrations("Pendulum-v1", source=ds.spec.dataset_id, tier="high", root=root)
    prefs = build_preference_pairs(ds.spec.dataset_id, 50, segment_length=25, teacher="oracle", root=root,
                                   seed=0).save(tmp_path / "prefs.npz")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    out = tmp_path / "aihf"
    assert main(["train", "--algo", "aihf", "--env", "prefgym/PendulumPreference-v0", "--hyperparams",
                 "n_timesteps=200", "sac_steps_per_iter=100", f"demonstrations={demos.spec.dataset_id}",
                 f"preferences={prefs}", "sac_kwargs={learning_starts: 50, buffer_size: 1000}",
                 "--out", str(out), "--no-progress"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["base_task"] == "Pendulum-v1" and cfg["timesteps_done"] == 200
    assert (out / "metrics.csv").exists() and (out / "policy.safetensors").exists()
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0
    text = capsys.readouterr().out
    assert "return over 2 episodes of the base task Pendulum-v1 (true reward)" in text


def _shipped_ids(algo: str) -> list[str]:
    import yaml

    text = (Path(__file__).parents[1] / "prefgym" / "hyperparams" / f"{algo}.yml").read_text()
    return [k for k in yaml.safe_load(text) if k.startswith("prefgym/")]


@pytest.mark.parametrize("algo, env_id", [("ppo", i) for i in _shipped_ids("ppo")]
                         + [("sac", i) for i in _shipped_ids("sac")])
def test_every_listed_id_trains_and_evaluates(algo, env_id, tmp_path, capsys, one_thread):
    from prefgym.envs.mujoco import CONTROL_TASKS

    if env_id in CONTROL_TASKS and CONTROL_TASKS[env_id] != "Pendulum-v1":
        pytest.importorskip("mujoco")
    kwargs = ['--env-kwargs', '{"horizon": 12, "segment_length": 6}'] if env_id in CONTROL_TASKS else []
    size = (["n_steps=16", "batch_size=16", "n_envs=1"] if algo == "ppo"
            else ["learning_starts=8", "batch_size=8", "buffer_size=100"])
    out = tmp_path / "run"
    assert main(["train", "--algo", algo, "--env", env_id, *kwargs, "--hyperparams", "n_timesteps=32",
                 "selfplay.snapshot_every=16", "checkpoint_every=32", *size, "--out", str(out),
                 "--no-progress"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["snapshots"] == 3 and (out / "checkpoints" / "model_32_steps.zip").exists()
    assert main(["evaluate", str(out), "--episodes", "2"]) == 0
    text = capsys.readouterr().out
    assert "return over 2 episodes" in text
    if "Gridworld" in env_id or env_id in ("prefgym/RPS-v0", "prefgym/MatrixGame-v0"):
        assert "exact exploitability" in text
