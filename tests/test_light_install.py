"""The light core: what the default install needs, what starts fast, what a missing extra says.

Subprocess tests run a fresh interpreter so that ``sys.modules`` shows exactly what a command
imported; "without torch" is simulated by ``sys.modules[name] = None``, which makes
``import name`` raise ``ModuleNotFoundError`` as on a machine where it is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefgym.cli import build_parser, main, plain_text

ROOT = Path(__file__).resolve().parents[1]
#: modules that neither ``prefgym --help`` nor ``prefgym list`` may import
HEAVY = ("torch", "transformers", "mujoco", "stable_baselines3", "scipy.optimize", "minari", "datasets")
#: the optional modules a torch-free core install lacks
OPTIONAL = ("torch", "transformers", "stable_baselines3", "mujoco", "minari", "datasets", "peft",
            "accelerate", "safetensors", "tensorboard")


def _python(code: str, cwd: Path | None = None, block: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with ``block`` made unimportable; return the process."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in block)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _loaded_after(argv: list[str]) -> dict:
    code = (f"import contextlib, io, json\nfrom prefgym.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    rc = main({argv!r})\n"
            f"print(json.dumps({{'rc': rc, 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["train", "--help"], ["reproduce", "--help"]])
def test_help_and_list_import_no_heavy_module(argv):
    res = _loaded_after(argv)
    assert res == {"rc": 0, "loaded": []}


def test_importing_prefgym_imports_no_optional_module():
    code = ("import prefgym, prefgym.games, prefgym.envs, prefgym.agents, prefgym.plotting, prefgym.cli\n"
            "import prefgym.llm, prefgym.judges, prefgym.agents.llm, prefgym.agents.llm.tasks\n"
            "import prefgym.reproductions, prefgym.data, prefgym.llm_tasks, prefgym.cli_common\n"
            f"print([m for m in {OPTIONAL + ('scipy.optimize',)!r} if m in sys.modules])")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_core_works_without_any_optional_module(tmp_path):
    """prefgym train, list, a gridworld Markov agent, an env and a plot, with no optional module."""
    code = """
import contextlib, io
import gymnasium as gym
import prefgym
from prefgym.agents import OMPO, OMWU
from prefgym.cli import main
from prefgym.games import planted_nash, random_gridworld
from prefgym.plotting import plot_curves

with contextlib.redirect_stdout(io.StringIO()) as out:
    assert main(["train", "--iterations", "200", "--no-progress", "--out", "run"]) == 0
    assert main(["list"]) == 0
assert "omwu-llm" in out.getvalue() and "llm-menu" in out.getvalue()
agent = OMWU(planted_nash(5, 2, seed=0), learning_rate=1.0).learn(2000)
assert agent.history["last_gap"][-1] < 1e-3
ompo = OMPO(random_gridworld(seed=0), learning_rate=10.0).learn(20)
assert ompo.history["exploitability"][-1] < ompo.history["exploitability"][0]
env = gym.make("prefgym/Gridworld-v0")
env.reset(seed=0)
env.step(env.action_space.sample())
plot_curves({"gap": agent.history["last_gap"]}, "gap.png")
print("ok")
"""
    proc = _python(code, cwd=tmp_path, block=OPTIONAL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"config.json", "metrics.csv", "agent.zip"}
    assert (tmp_path / "gap.png").stat().st_size > 0


@pytest.mark.parametrize(("statement", "extra"), [
    ("from prefgym.agents.llm import OMWUTrainer", "llm"),
    ("from prefgym.llm import LMPolicy", "llm"),
    ("from prefgym.agents import AIHF", "sb3"),
])
def test_missing_extra_is_one_line_naming_it(statement, extra):
    code = (f"from prefgym.errors import MissingExtraError\ntry:\n    {statement}\n"
            f"except MissingExtraError as exc:\n    print(str(exc))\n")
    proc = _python(code, block=OPTIONAL)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'prefgym[{extra}]'" in lines[0]


@pytest.mark.parametrize(("argv", "extra"), [
    (["train", "--agent", "omwu-llm", "--iterations", "1"], "llm"),
    (["reproduce", "llm-menu", "--quick"], "llm"),
    (["reproduce", "aihf-mujoco", "--quick"], "mujoco"),
    (["data", "expert", "--env", "Pendulum-v1", "--timesteps", "10", "--out", "expert"], "mujoco"),
])
def test_cli_without_extra_fails_in_one_line(argv, extra, tmp_path):
    code = f"from prefgym.cli import main\nsys.exit(main({argv!r}))"
    proc = _python(code, cwd=tmp_path, block=OPTIONAL)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert f"pip install 'prefgym[{extra}]'" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_pyproject_core_and_extras():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in meta["dependencies"]}
    assert core == {"numpy", "scipy", "gymnasium", "pettingzoo", "matplotlib", "tqdm"}
    extras = meta["optional-dependencies"]
    assert {"llm", "mujoco", "sb3", "tensorboard", "test", "all"} <= set(extras)
    torch_pins = [d for deps in extras.values() for d in deps if d.startswith("torch")]
    assert torch_pins and all("<" not in d for d in torch_pins)  # no upper pin on torch
    assert any(d.startswith("transformers") for d in extras["llm"])
    assert any(d.startswith("stable-baselines3") for d in extras["sb3"])
    assert any(d.startswith("gymnasium[mujoco]") for d in extras["mujoco"])
    for name in ("llm", "mujoco", "sb3", "tensorboard"):
        assert name in extras["all"][0] and name in extras["test"][-1]
    assert {"pytest", "ruff", "hypothesis", "pygame"} <= {d.split(">")[0] for d in extras["test"]}


def test_help_is_plain_text_and_lists_every_command(capsys):
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    assert commands == {"list", "train", "evaluate", "reproduce", "data"}
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for cmd in commands:
        assert f"    {cmd}" in text
    for argv in (["train", "--help"], ["evaluate", "--help"], ["reproduce", "--help"], ["data", "--help"]):
        assert main(argv) == 0
        text += capsys.readouterr().out
    assert "``" not in text and ":class:" not in text and "`" not in text
    assert plain_text("``pi`` and :class:`~prefgym.agents.OMWU`") == "pi and OMWU"


def test_list_has_no_markup(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":class:" not in text


def test_llm_agent_summaries_match_the_trainers():
    pytest.importorskip("torch")
    from prefgym.agents.llm import LLM_AGENT_SUMMARIES, LLM_AGENTS
    from prefgym.algorithms import get_spec

    assert list(LLM_AGENT_SUMMARIES) == list(LLM_AGENTS)
    for key, (cls_name, summary) in LLM_AGENT_SUMMARIES.items():
        cls = LLM_AGENTS[key]
        assert cls.__name__ == cls_name
        assert summary == get_spec(key).title  # the spec's one line


def test_reproduction_catalog_matches_the_modules():
    from prefgym.reproductions import CATALOG, REPRODUCTIONS

    pytest.importorskip("torch")
    pytest.importorskip("stable_baselines3")
    for name, entry in CATALOG.items():
        rep = REPRODUCTIONS[name]
        assert rep.name == name and rep.description == entry.description
        assert rep.runner.__module__ == entry.module


class _CountingBars:
    """Patches tqdm so that every shown (not disabled) bar is counted by its description."""

    def __init__(self, monkeypatch):
        import tqdm.auto

        self.shown: list[str] = []
        outer = self

        class Counting(tqdm.auto.tqdm):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if not self.disable:
                    outer.shown.append(str(kwargs.get("desc")))

        monkeypatch.setattr(tqdm.auto, "tqdm", Counting)


def test_reproduce_quick_folder_notice_and_one_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bars = _CountingBars(monkeypatch)
    assert main(["reproduce", "mpo-fig3", "--quick"]) == 0
    captured = capsys.readouterr()
    assert bars.shown == ["mpo-fig3 (quick)"]  # one bar, not one per trained agent
    assert "smoke check" in captured.err and "not whether the paper's claims hold" in captured.err
    assert "not the paper's claims" in captured.out
    summary = json.loads((tmp_path / "runs" / "reproduce" / "mpo-fig3-quick" / "summary.json").read_text())
    assert summary["quick"] is True and summary["verdicts"]
    assert not (tmp_path / "runs" / "reproduce" / "mpo-fig3").exists()


def test_learn_builds_no_bar_unless_shown(monkeypatch):
    import tqdm.auto

    from prefgym.agents import OMWU
    from prefgym.games import rps

    def no_bar(*args, **kwargs):
        raise AssertionError("learn() built a progress bar that is not shown")

    monkeypatch.setattr(tqdm.auto, "tqdm", no_bar)
    agent = OMWU(rps(), learning_rate=0.1).learn(5)
    assert agent.num_iterations == 5
    with pytest.raises(AssertionError, match="not shown"):
        agent.learn(1, progress_bar=True)
