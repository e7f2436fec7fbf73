"""No file makes prefgym run code; every bad file gets an AgentLoadError naming what is wrong; no run is lost.

The crafted payloads create a marker file when they are un-pickled: each load path must
refuse them before that (and the ``trust_remote_code`` opt-in shows the payload is real).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from prefgym.agents import OMWU, BaseAgent
from prefgym.cli import main
from prefgym.errors import AgentLoadError, DatasetError, OutputExistsError, UnsafeFileError
from prefgym.games import rps

PENDULUM = "Pendulum-v1"
TINY_SAC = {"buffer_size": 500, "learning_starts": 10, "batch_size": 8, "policy_kwargs": {"net_arch": [8]}}


class _Payload:
    """Un-pickling this creates ``marker`` (stands for any code an attacker would run)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cloudpickled(marker: Path) -> str:
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(_Payload(marker))).decode()


def _evil_sb3_zip(path: Path, marker: Path) -> Path:
    """An SB3-style zip whose ``data`` JSON holds a cloudpickled payload, as SB3 writes its objects."""
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": _cloudpickled(marker)},
            "num_timesteps": 0}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", json.dumps(data))
        zf.writestr("_stable_baselines3_version", "2.9.2")
    return path


def _evil_pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PAYLOAD_RAN"
    yield m


# ------------------------------------------------------------------ SB3 zips
def test_sb3_zip_with_payload_is_refused_and_the_opt_in_shows_it_is_real(tmp_path, marker):
    from prefgym.data.control import load_policy
    from prefgym.sb3_files import load_sb3_model

    evil = _evil_sb3_zip(tmp_path / "evil.zip", marker)
    with pytest.raises(UnsafeFileError, match="trust_remote_code"):
        load_sb3_model(evil)
    with pytest.raises(UnsafeFileError, match="cloudpickled"):
        load_policy(evil)
    assert not marker.exists()
    with pytest.raises(AgentLoadError):  # the payload is no SB3 model, so SB3 fails after un-pickling it
        load_sb3_model(evil, trust_remote_code=True)
    assert marker.exists()  # the crafted file does run code when trusted: the refusals above matter


def test_cli_data_demos_and_rollouts_refuse_the_payload(tmp_path, marker, capsys):
    evil = _evil_sb3_zip(tmp_path / "evil.zip", marker)
    root = tmp_path / "minari"
    assert main(["data", "demos", "--env", PENDULUM, "--policy", str(evil), "--steps", "10",
                 "--root", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--trust-remote-code" in err and len(err.strip().splitlines()) == 1
    expert = tmp_path / "expert"
    (expert / "checkpoints").mkdir(parents=True)
    for k in (1, 2, 3):
        shutil.copy(evil, expert / "checkpoints" / f"sac_{k}_steps.zip")
    assert main(["data", "rollouts", "--env", PENDULUM, "--expert", str(expert), "--steps-per-checkpoint",
                 "10", "--root", str(root), "--no-progress"]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err
    assert not marker.exists()
    assert not root.exists() or not any(root.rglob("metadata.json"))  # nothing half-written


def test_sb3_model_round_trip_without_pickle(tmp_path):
    import gymnasium
    import torch
    from stable_baselines3 import SAC

    from prefgym.sb3_files import load_sb3_model, save_sb3_model

    model = SAC("MlpPolicy", gymnasium.make(PENDULUM), seed=0, **TINY_SAC)
    model.learn(30)
    path = save_sb3_model(model, tmp_path / "m")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["prefgym_sb3.json", "tensors.safetensors"]
        meta = json.loads(zf.read("prefgym_sb3.json"))
    assert meta["format_version"] == 1 and ":serialized:" not in json.dumps(meta)
    back = load_sb3_model(path, env=gymnasium.make(PENDULUM), device="cpu")
    for (k, a), b in zip(model.policy.state_dict().items(), back.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert back.num_timesteps == 30 and back._n_updates == model._n_updates
    assert torch.equal(back.log_ent_coef, model.log_ent_coef)
    opt_a, opt_b = model.actor.optimizer.state_dict(), back.actor.optimizer.state_dict()
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for i in opt_a["state"]:
        assert torch.equal(opt_a["state"][i]["exp_avg"], opt_b["state"][i]["exp_avg"])
    obs = np.linspace(-1, 1, 3).astype(np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], back.predict(obs, deterministic=True)[0])
    back.learn(20, reset_num_timesteps=False)
    assert back.num_timesteps == 50


def test_ppo_round_trip_keeps_constant_schedules(tmp_path):
    import gymnasium
    import torch
    from stable_baselines3 import PPO

    from prefgym.sb3_files import load_sb3_model, save_sb3_model

    model = PPO("MlpPolicy", gymnasium.make("CartPole-v1"), n_steps=32, batch_size=16, n_epochs=1,
                clip_range=0.1, seed=0, policy_kwargs={"net_arch": [8]})
    model.learn(32)
    back = load_sb3_model(save_sb3_model(model, tmp_path / "ppo.zip"), env=gymnasium.make("CartPole-v1"))
    assert isinstance(back, PPO) and back.clip_range(1.0) == 0.1 and back.n_steps == 32
    opt_a, opt_b = model.policy.optimizer.state_dict(), back.policy.optimizer.state_dict()
    assert all(torch.equal(opt_a["state"][i]["exp_avg_sq"], opt_b["state"][i]["exp_avg_sq"])
               for i in opt_a["state"])
    with pytest.raises(AgentLoadError, match="holds a PPO model, not a SAC"):
        load_sb3_model(tmp_path / "ppo.zip", algorithm="SAC")


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "newer", "bad_tensors"])
def test_sb3_model_bad_files(tmp_path, damage):
    import gymnasium
    from stable_baselines3 import SAC

    from prefgym.sb3_files import load_sb3_model, save_sb3_model

    path = save_sb3_model(SAC("MlpPolicy", gymnasium.make(PENDULUM), **TINY_SAC), tmp_path / "m.zip")
    raw = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip" * 50)
    else:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            meta, tensors = json.loads(zf.read("prefgym_sb3.json")), zf.read("tensors.safetensors")
        if damage == "newer":
            meta["format_version"] = 99
        else:
            tensors = tensors[:-40]
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("prefgym_sb3.json", json.dumps(meta))
            zf.writestr("tensors.safetensors", tensors)
    match = {"newer": "newer than this prefgym", "bad_tensors": "corrupted"}.get(damage, "not a readable zip")
    with pytest.raises(AgentLoadError, match=match):
        load_sb3_model(path)


# ------------------------------------------------------------------ tabular / Markov agents
@pytest.fixture
def omwu_file(tmp_path):
    return OMWU(rps(), learning_rate=0.5, seed=0).learn(5).save(tmp_path / "omwu.zip")


def _rewrite(path: Path, meta_fn=None, state: bytes | None = None) -> None:
    with zipfile.ZipFile(path) as zf:
        meta, raw_state = json.loads(zf.read("agent.json")), zf.read("state.npz")
    if meta_fn is not None:
        meta_fn(meta)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("agent.json", json.dumps(meta))
        zf.writestr("state.npz", raw_state if state is None else state)


def test_agent_file_carries_a_format_version_and_round_trips(omwu_file):
    with zipfile.ZipFile(omwu_file) as zf:
        meta = json.loads(zf.read("agent.json"))
    assert meta["format"] == "prefgym.agent" and meta["format_version"] == 1
    agent = OMWU(rps(), learning_rate=0.5, seed=0).learn(5)
    back = BaseAgent.load(omwu_file)
    assert np.array_equal(back.policy, agent.policy) and back.num_iterations == 5


def test_agent_file_from_before_format_versions_still_loads(omwu_file):
    _rewrite(omwu_file, lambda m: [m.pop("format"), m.pop("format_version")])
    assert OMWU.load(omwu_file).num_iterations == 5


@pytest.mark.parametrize("damage, match", [
    ("missing", "no saved agent"),
    ("empty", "empty, truncated or corrupted"),
    ("truncated", "empty, truncated or corrupted"),
    ("corrupted", "corrupted"),
    ("bad_json", "not valid JSON"),
    ("wrong_class", "holds a MWU agent, not a OMWU"),
    ("unknown_class", "unknown agent class"),
    ("newer", "format version 7, newer"),
    ("num_iterations_lots", "'num_iterations' must be a int; got 'lots'"),
    ("lr_lots", "hyper-parameter 'learning_rate' must be a number; got 'lots'"),
    ("no_state", "no state.npz"),
])
def test_agent_load_errors_name_the_problem(omwu_file, damage, match):
    raw = omwu_file.read_bytes()
    if damage == "missing":
        omwu_file.unlink()
    elif damage == "empty":
        omwu_file.write_bytes(b"")
    elif damage == "truncated":
        omwu_file.write_bytes(raw[: len(raw) - 30])
    elif damage == "corrupted":  # flip bytes inside the compressed members: CRC / zlib errors
        mid = len(raw) // 3
        omwu_file.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid:mid + 40]) + raw[mid + 40:])
    elif damage == "bad_json":
        with zipfile.ZipFile(omwu_file, "w") as zf:
            zf.writestr("agent.json", "{not json")
            zf.writestr("state.npz", b"")
    elif damage == "no_state":
        with zipfile.ZipFile(omwu_file, "w") as zf:
            zf.writestr("agent.json", "{}")
    else:
        edit = {"wrong_class": lambda m: m.update({"class": "MWU"}),
                "unknown_class": lambda m: m.update({"class": "Evil"}),
                "newer": lambda m: m.update({"format_version": 7}),
                "num_iterations_lots": lambda m: m.update({"num_iterations": "lots"}),
                "lr_lots": lambda m: m["hparams"].update({"learning_rate": "lots"})}[damage]
        _rewrite(omwu_file, edit)
    cls = BaseAgent if damage == "unknown_class" else OMWU
    with pytest.raises(AgentLoadError, match=match):
        cls.load(omwu_file)


def test_agent_state_with_pickled_objects_is_refused(omwu_file, marker):
    buf = io.BytesIO()
    np.savez(buf, logits=np.array([_Payload(marker)], dtype=object))
    _rewrite(omwu_file, state=buf.getvalue())
    with pytest.raises(AgentLoadError, match="pickled"):
        OMWU.load(omwu_file)
    assert not marker.exists()


def test_cli_evaluate_reports_a_bad_agent_file_in_one_line(tmp_path, capsys):
    (tmp_path / "agent.zip").write_bytes(b"PK\x03\x04 truncated")
    assert main(["evaluate", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ------------------------------------------------------------------ preference pairs
def test_pickled_preference_file_is_refused(tmp_path, marker):
    from prefgym.data.control import PreferencePairs

    path = tmp_path / "prefs.npz"
    np.savez(path, meta=np.array("{}"), labels=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(DatasetError):
        PreferencePairs.load(path)
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="unreadable"):
        PreferencePairs.load(path)
    assert not marker.exists()


# ------------------------------------------------------------------ AIHF
@pytest.fixture(scope="module")
def aihf_file(tmp_path_factory):
    from prefgym.agents.aihf import AIHF

    agent = AIHF(PENDULUM, mode="rlhf", sac_kwargs=TINY_SAC, reward_pretrain_steps=0, seed=0)
    return agent.save(tmp_path_factory.mktemp("aihf") / "aihf.zip")


def test_aihf_file_holds_no_pickle_and_round_trips(aihf_file):
    from prefgym.agents.aihf import AIHF

    with zipfile.ZipFile(aihf_file) as zf:
        assert sorted(zf.namelist()) == ["agent.json", "reward.safetensors", "sac.safetensors"]
        assert json.loads(zf.read("agent.json"))["format_version"] == 2
    a, b = AIHF.load(aihf_file), AIHF.load(aihf_file)
    obs = np.zeros((2, 3), np.float32)
    assert np.array_equal(a.reward(obs, np.zeros((2, 1))), b.reward(obs, np.zeros((2, 1))))


def test_aihf_old_file_with_sb3_payload_is_refused(tmp_path, aihf_file, marker):
    from prefgym.agents.aihf import AIHF

    with zipfile.ZipFile(aihf_file) as zf:
        meta = json.loads(zf.read("agent.json"))
    for key in ("format", "format_version", "sac_state", "reward_optimizer"):
        meta.pop(key)
    evil = _evil_sb3_zip(tmp_path / "sac.zip", marker)
    old = tmp_path / "old_aihf.zip"
    with zipfile.ZipFile(old, "w") as zf:  # the layout older prefgym versions wrote
        zf.writestr("agent.json", json.dumps(meta))
        zf.writestr("sac.zip", evil.read_bytes())
        zf.writestr("reward.pt", _evil_pickle_bytes(marker))
    with pytest.raises(UnsafeFileError, match="trust_remote_code"):
        AIHF.load(old)
    assert not marker.exists()


@pytest.mark.parametrize("damage, match", [
    ("truncated", "empty, truncated or corrupted"), ("newer", "newer"), ("wrong_class", "not a AIHF"),
    ("hparam", "'reward_lr' must be a number"), ("weights", "corrupted"), ("shapes", "does not fit"),
])
def test_aihf_load_errors(tmp_path, aihf_file, damage, match):
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    from prefgym.agents.aihf import AIHF

    path = tmp_path / "a.zip"
    raw = aihf_file.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        with zipfile.ZipFile(aihf_file) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        meta = json.loads(members["agent.json"])
        if damage == "newer":
            meta["format_version"] = 3
        elif damage == "wrong_class":
            meta["class"] = "OMWU"
        elif damage == "hparam":
            meta["hparams"]["reward_lr"] = "lots"
        elif damage == "weights":
            members["sac.safetensors"] = members["sac.safetensors"][:100]
        else:
            tensors = st_load(members["reward.safetensors"])
            key = next(k for k in tensors if k.startswith("reward_net.") and tensors[k].shape[-1] > 1)
            tensors[key] = tensors[key][..., :1].contiguous()
            members["reward.safetensors"] = st_save(tensors)
        members["agent.json"] = json.dumps(meta).encode()
        with zipfile.ZipFile(path, "w") as zf:
            for n, v in members.items():
                zf.writestr(n, v)
    with pytest.raises(AgentLoadError, match=match):
        AIHF.load(path)


# ------------------------------------------------------------------ LLM trainer checkpoints
@pytest.fixture(scope="module")
def llm_run(tmp_path_factory):
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("llm") / "run"
    assert main(["train", "--agent", "omwu-llm", "--task", "menu", "--iterations", "2", "--seed", "1",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def _copy_run(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


def test_truncated_trainer_state_on_resume_is_one_line(llm_run, tmp_path, capsys):
    run = _copy_run(llm_run, tmp_path / "run")
    state = run / "checkpoint-000002" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:200])
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trainer_state.pt" in err and "truncated" in err


def test_pickled_trainer_state_does_not_run(llm_run, tmp_path, marker, capsys):
    import torch

    run = _copy_run(llm_run, tmp_path / "run")
    state = run / "checkpoint-000002" / "trainer_state.pt"
    torch.save({"num_iterations": 2, "evil": _Payload(marker)}, state)
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 2
    assert "trainer_state.pt" in capsys.readouterr().err
    assert not marker.exists()


def test_latest_pointer_cannot_leave_the_run_folder(llm_run, tmp_path):
    from prefgym.agents.llm.trainer import SelfPlayTrainer

    run = _copy_run(llm_run, tmp_path / "run")
    shutil.copytree(run / "checkpoint-000002", tmp_path / "elsewhere")
    (run / "latest").write_text("../elsewhere")
    with pytest.raises(AgentLoadError, match="outside the run folder"):
        SelfPlayTrainer.resolve_checkpoint(run)
    (run / "latest").write_text("checkpoint-999999")
    with pytest.raises(AgentLoadError, match="holds no trainer_state.pt"):
        SelfPlayTrainer.resolve_checkpoint(run)


@pytest.mark.parametrize("damage, match", [("empty", "unreadable"), ("newer", "newer"),
                                           ("prompts", "'prompts' must be a list"),
                                           ("hparam", "cannot rebuild OMWUTrainer.*'lots'")])
def test_trainer_json_errors(llm_run, tmp_path, damage, match):
    from prefgym.agents.llm.trainer import SelfPlayTrainer

    run = _copy_run(llm_run, tmp_path / "run")
    cfg_path = run / "checkpoint-000002" / "trainer.json"
    cfg = json.loads(cfg_path.read_text())
    assert cfg["format"] == "prefgym.selfplay_trainer" and cfg["format_version"] == 1
    if damage == "empty":
        cfg_path.write_text("")
    else:
        if damage == "hparam":
            cfg["hparams"]["steps_per_iteration"] = "lots"
        else:
            cfg.update({"format_version": 5} if damage == "newer" else {"prompts": "lots"})
        cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(AgentLoadError, match=match):
        SelfPlayTrainer.load(run, judge=object())


def test_llm_train_over_a_run_needs_overwrite(llm_run, tmp_path, capsys):
    run = _copy_run(llm_run, tmp_path / "run")
    args = ["train", "--agent", "omwu-llm", "--task", "menu", "--iterations", "1", "--out", str(run),
            "--no-progress"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert (run / "latest").read_text() == "checkpoint-000001"
    assert not (run / "checkpoint-000002").exists()  # the old run went as a whole


# ------------------------------------------------------------------ output folders
def test_train_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--agent", "omwu", "--iterations", "5", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    args[4] = "9"
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["iterations"] == 9
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_reproduce_and_data_refuse_non_empty_outputs(tmp_path, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["reproduce", "mpo-fig3", "--quick", "--no-progress", "--out", str(out)]) == 2
    assert main(["data", "expert", "--env", PENDULUM, "--timesteps", "10", "--out", str(out),
                 "--no-progress"]) == 2
    assert (out / "keep.txt").read_text() == "mine"
    prefs = tmp_path / "prefs.npz"
    prefs.write_bytes(b"mine")
    assert main(["data", "preferences", "--env", PENDULUM, "--rollouts", "x/y-v0", "--out", str(prefs),
                 "--root", str(tmp_path / "m"), "--no-progress"]) == 2
    assert prefs.read_bytes() == b"mine"
    assert all(len(line) for line in capsys.readouterr().err.strip().splitlines())


def test_failed_dataset_write_leaves_nothing_behind(tmp_path):
    from prefgym.data.control import load_dataset, make_demonstrations, scripted_policy

    root = tmp_path / "minari"
    policy = scripted_policy("InvertedPendulum-v5")
    with pytest.raises(DatasetError, match="bad dataset id"):
        make_demonstrations("InvertedPendulum-v5", policy=policy, dataset_id="t/x-v0", n_episodes=1,
                            root=root)
    assert not root.exists() or not any(root.iterdir())
    ds = make_demonstrations("InvertedPendulum-v5", policy=policy, dataset_id="tt/demo-v0", n_episodes=1,
                             root=root)  # later calls work
    assert ds.total_episodes == 1 and load_dataset("tt/demo-v0", root=root).total_episodes == 1
    with pytest.raises(DatasetError, match="already exists"):
        make_demonstrations("InvertedPendulum-v5", policy=policy, dataset_id="tt/demo-v0", n_episodes=1,
                            root=root)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_staged_output_dir_keeps_the_old_run_on_failure(tmp_path):
    from prefgym.fileio import staged_output_dir

    out = tmp_path / "run"
    with staged_output_dir(out) as stage:
        (stage / "a.txt").write_text("old")
    with pytest.raises(OutputExistsError):
        with staged_output_dir(out):
            pass
    with pytest.raises(RuntimeError), staged_output_dir(out, overwrite=True) as stage:
        (stage / "a.txt").write_text("new")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    with staged_output_dir(out, overwrite=True) as stage:
        (stage / "b.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
