"""One Agent API, SB3's, on every agent: callbacks, loggers, seeds and parameters.

OMWU, OMPO, an LLM trainer and AIHF each take SB3's ``CheckpointCallback`` and a
``CallbackList`` and write TensorBoard event files through ``set_logger``; the numbers
read back from the checkpoints and event files are checked against the agents.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from prefgym.agents import OMPO, OMWU, BaseAgent, StopTrainingOnGap
from prefgym.agents.callbacks import BaseCallback, RecordPolicy
from prefgym.errors import InvalidArgumentError, InvalidTypeError
from prefgym.games import planted_nash, rps
from prefgym.games.gridworld import random_gridworld

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common import callbacks as sb3_callbacks  # noqa: E402
from stable_baselines3.common.logger import configure as sb3_configure  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value)]`` of every TensorBoard event file under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(folder).rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file under {folder}"
    out: dict[str, list[tuple[int, float]]] = {}
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


class _Count(sb3_callbacks.BaseCallback):
    """An SB3 callback counting its hooks; records what it read from the model."""

    def __init__(self):
        super().__init__()
        self.starts = self.ends = 0
        self.timesteps: list[int] = []

    def _on_training_start(self) -> None:
        self.starts += 1

    def _on_step(self) -> bool:
        self.timesteps.append(self.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        self.ends += 1


# ------------------------------------------------------------------ the four agents
def test_omwu_checkpoint_callback_list_and_tensorboard(tmp_path):
    game = planted_nash(5, rank=2, seed=0)
    agent = OMWU(game, learning_rate=1.0, seed=0)
    agent.set_logger(sb3_configure(str(tmp_path / "tb"), ["tensorboard"]))
    count, calls = _Count(), []
    cb = sb3_callbacks.CallbackList([
        sb3_callbacks.CheckpointCallback(10, str(tmp_path / "ck"), name_prefix="omwu"),
        count, StopTrainingOnGap(0.0),  # never stops: gaps stay > 0
    ])
    agent.learn(30, callback=[cb, lambda loc, glob: calls.append(loc["infos"][0]["last_gap"])],
                log_interval=5)
    assert count.starts == count.ends == 1 and count.timesteps == list(range(1, 31))
    np.testing.assert_array_equal(calls, agent.history["last_gap"])
    for t in (10, 20, 30):
        saved = OMWU.load(tmp_path / "ck" / f"omwu_{t}_steps.zip")
        assert saved.num_iterations == t
        np.testing.assert_array_equal(saved.policy, OMWU(game, learning_rate=1.0).learn(t).policy)
    tb = _scalars(tmp_path / "tb")
    steps, values = zip(*tb["last_gap"], strict=True)
    assert steps == (5, 10, 15, 20, 25, 30)
    np.testing.assert_allclose(values, agent.history["last_gap"][4::5], rtol=1e-6)  # float32 in TB
    assert [s for s, _ in tb["iteration"]] == list(steps)


def test_ompo_checkpoint_callback_list_and_tensorboard(tmp_path):
    game = random_gridworld(0, n_states=6, n_actions=3, horizon=3)
    agent = OMPO(game, learning_rate=2.0)
    agent.set_logger(sb3_configure(str(tmp_path / "tb"), ["tensorboard", "csv"]))
    rec, count = RecordPolicy(every=4), _Count()
    agent.learn(8, callback=sb3_callbacks.CallbackList([
        sb3_callbacks.CheckpointCallback(4, str(tmp_path / "ck")), rec, count]), log_interval=2)
    assert rec.iterations == [0, 4, 8] and count.timesteps == list(range(1, 9))
    saved = OMPO.load(tmp_path / "ck" / "rl_model_4_steps.zip")
    np.testing.assert_array_equal(saved.policy, rec.policies[1])
    np.testing.assert_array_equal(saved.history["exploitability"], agent.history["exploitability"][:4])
    tb = _scalars(tmp_path / "tb")
    assert [s for s, _ in tb["exploitability"]] == [2, 4, 6, 8]
    np.testing.assert_allclose([v for _, v in tb["average_exploitability"]],
                               agent.history["average_exploitability"][1::2], rtol=1e-6)
    rows = (tmp_path / "tb" / "progress.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # SB3's CSV: a header and one row per dump


def test_llm_trainer_checkpoint_callback_list_and_tensorboard(tiny, tmp_path):
    pytest.importorskip("transformers")
    from prefgym.agents.llm import MenuPolicy, OMWUTrainer
    from prefgym.judges import TableJudge
    from prefgym.llm.policy import LMPolicy

    replies = ["goodbye!", "hello there.", "I am fine."]
    prompts = ["User: hi\nAssistant:", "User: bye\nAssistant:"]
    model, tok = tiny
    menu = MenuPolicy(LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model)), replies)
    judge = TableJudge.from_preference(planted_nash(3, rank=1, seed=2).preference, replies)
    trainer = OMWUTrainer(menu, judge, prompts, steps_per_iteration=1, save_every=None, eta=1.0)
    trainer.set_logger(sb3_configure(str(tmp_path / "tb"), ["tensorboard"]))
    count = _Count()
    trainer.learn(2, callback=sb3_callbacks.CallbackList([
        sb3_callbacks.CheckpointCallback(1, str(tmp_path / "ck")), count]))
    assert count.timesteps == [1, 2] and trainer.num_iterations == 2
    loaded = OMWUTrainer.load(tmp_path / "ck" / "rl_model_1_steps.zip", judge=judge)
    assert loaded.num_iterations == 1 and loaded.history[0]["loss"] == trainer.history[0]["loss"]
    tb = _scalars(tmp_path / "tb")
    assert [s for s, _ in tb["loss"]] == [1, 2]
    np.testing.assert_allclose([v for _, v in tb["loss"]], [r["loss"] for r in trainer.history], rtol=1e-6)
    # parameters round trip: a copy of the first iterate's weights restores its predictions
    params = loaded.get_parameters()
    trainer.set_parameters(params)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(
        trainer.lm.model.state_dict().values(), loaded.lm.model.state_dict().values(), strict=True))
    with pytest.raises(InvalidArgumentError, match="missing|needs both"):
        trainer.set_parameters({"policy": params["policy"]})


def test_aihf_checkpoint_callback_list_and_tensorboard(tmp_path):
    pytest.importorskip("torch")
    from prefgym.agents.aihf import AIHF

    rng = np.random.default_rng(0)
    demos = (rng.normal(size=(64, 3)).astype(np.float32),
             rng.uniform(-2, 2, size=(64, 1)).astype(np.float32))
    agent = AIHF("Pendulum-v1", demonstrations=demos, mode="irl", sac_steps_per_iter=40,
                 reward_steps_per_iter=2, reward_batch_size=16, seed=0,
                 sac_kwargs={"learning_starts": 20, "buffer_size": 1000, "batch_size": 16,
                             "policy_kwargs": {"net_arch": [8]}})
    agent.set_logger(sb3_configure(str(tmp_path / "tb"), ["tensorboard"]))
    count = _Count()
    agent.learn(80, callback=sb3_callbacks.CallbackList([
        sb3_callbacks.CheckpointCallback(40, str(tmp_path / "ck")), count]))
    assert count.starts == count.ends == 1 and count.timesteps == list(range(1, 81))
    assert agent.num_iterations == 2 and agent.num_timesteps == 80
    saved = AIHF.load(tmp_path / "ck" / "rl_model_40_steps.zip")
    assert saved.num_iterations == 0 and saved.sac.num_timesteps == 40  # saved before the reward step
    tb = _scalars(tmp_path / "tb")
    assert [(s, v) for s, v in tb["aihf/iteration"]] == [(40, 1.0), (80, 2.0)]
    np.testing.assert_allclose([v for _, v in tb["aihf/demo_loss"]],
                               [r["demo_loss"] for r in agent.history], rtol=1e-5)
    # a second call restarts num_timesteps (SB3) but not SAC's own counter
    agent.learn(40)
    assert agent.num_timesteps == 40 and agent.sac.num_timesteps == 120
    params = agent.get_parameters()
    assert {"sac/policy", "reward_net", "reward_optimizer"} <= set(params)
    fresh = AIHF("Pendulum-v1", demonstrations=demos, mode="irl", seed=1,
                 sac_kwargs={"buffer_size": 1000, "policy_kwargs": {"net_arch": [8]}})
    fresh.set_parameters(params)
    obs = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(fresh.reward(obs, np.zeros((5, 1))), agent.reward(obs, np.zeros((5, 1))))
    np.testing.assert_allclose(fresh.predict(obs, deterministic=True)[0],
                               agent.predict(obs, deterministic=True)[0])


# ------------------------------------------------------------------ SB3 callbacks that need an env
def test_eval_callback_on_a_tabular_agent(tmp_path):
    opp = np.array([0.6, 0.2, 0.2])
    agent = OMWU(gym.make("prefgym/RPS-v0"), learning_rate=0.5, init_policy=[0.2, 0.3, 0.5])
    eval_env = gym.make("prefgym/RPS-v0", opponent=opp)
    evals = sb3_callbacks.EvalCallback(eval_env, n_eval_episodes=3, eval_freq=5, log_path=str(tmp_path),
                                       verbose=0, warn=False)
    agent.learn(15, callback=evals)
    # deterministic play: argmax of the last iterate, reward P(a beats opp) exactly (reward_mode="expected")
    expected = (rps().preference @ opp)[agent.policy.argmax()]
    assert evals.last_mean_reward == pytest.approx(expected, rel=1e-6)  # float32 in the VecEnv
    with np.load(tmp_path / "evaluations.npz") as data:
        assert list(data["timesteps"]) == [5, 10, 15] and data["results"].shape == (3, 3)


def test_stop_on_max_episodes_eval_and_progress_callbacks_on_agents():
    stop = sb3_callbacks.StopTrainingOnMaxEpisodes(max_episodes=7)
    agent = OMWU(rps(), learning_rate=0.1).learn(100, callback=stop)
    assert agent.num_iterations == 7  # one self-play round (episode) per update
    markov = OMPO(random_gridworld(0, n_states=5, n_actions=2, horizon=2), learning_rate=1.0)
    markov.learn(50, callback=sb3_callbacks.StopTrainingOnMaxEpisodes(max_episodes=3))
    assert markov.num_iterations == 3 and markov.get_env().num_envs == 1
    from prefgym.envs.gridworld import GridworldEnv

    evals = sb3_callbacks.EvalCallback(GridworldEnv(game=markov.game), n_eval_episodes=2, eval_freq=2,
                                       verbose=0, warn=False)
    # predict carries the step h in SB3's recurrent state; a start resets it
    markov.learn(4, callback=[evals, sb3_callbacks.ProgressBarCallback()])
    assert evals.n_calls == 4 and 0 <= evals.last_mean_reward <= markov.game.horizon  # evaluated (was -inf)


def test_prefgym_callbacks_are_sb3_callbacks():
    assert isinstance(StopTrainingOnGap(0.1), sb3_callbacks.BaseCallback)
    assert isinstance(RecordPolicy(), sb3_callbacks.BaseCallback)

    class Mine(BaseCallback):
        def _on_step(self):
            return self.num_timesteps < 4

    agent = OMWU(rps(), learning_rate=0.1).learn(20, callback=sb3_callbacks.CallbackList([Mine()]))
    assert agent.num_timesteps == 4
    # and SB3's algorithms take them unwrapped (isinstance holds), with every hook called
    from stable_baselines3 import PPO

    class Hooks(BaseCallback):
        def __init__(self):
            super().__init__()
            self.seen: list[str] = []

        def _on_rollout_end(self):
            self.seen.append("rollout_end")

        def _on_step(self):
            self.seen.append("step" if "dones" in self.locals else "no-locals")
            return True

    hooks = Hooks()
    ppo = PPO("MlpPolicy", gym.make("prefgym/RPS-v0"), n_steps=16, batch_size=16, n_epochs=1, seed=0,
              policy_kwargs={"net_arch": [8]})
    ppo.learn(32, callback=hooks)
    assert hooks.seen.count("step") == 32 and hooks.seen.count("rollout_end") == 2
    assert hooks.model is ppo and hooks.num_timesteps == 32


# ------------------------------------------------------------------ learn's arguments and counters
def test_learn_arguments_and_counters(monkeypatch):
    agent = OMWU(rps(), learning_rate=0.1, init_policy=[0.5, 0.3, 0.2])
    for bad, err in ((None, InvalidTypeError), ("10", InvalidTypeError), (True, InvalidTypeError),
                     (-1, InvalidArgumentError), (2.5, InvalidArgumentError),
                     (float("nan"), InvalidArgumentError)):
        with pytest.raises(err, match="total_timesteps must be an integer >= 0"):
            agent.learn(bad)
    with pytest.raises(InvalidArgumentError, match="log_interval"):
        agent.learn(5, log_interval=0)
    with pytest.raises(InvalidTypeError, match="callback must be"):
        agent.learn(5, callback=3)
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", None)  # learn without a bar never builds one
    agent.learn(5).learn(total_timesteps=1e1)
    assert agent.num_timesteps == 10 and agent.num_iterations == 15
    agent.learn(3, reset_num_timesteps=False)
    assert agent.num_timesteps == 13 and agent.num_iterations == 18
    assert agent.history["last_gap"].shape == (18,)


def test_set_random_seed_reproduces_sampled_training():
    game = random_gridworld(1, n_states=6, n_actions=3, horizon=3)

    def run(seed):
        agent = OMPO(game, learning_rate=1.0, form="policy", estimator="sampled", n_samples=8, seed=123)
        agent.set_random_seed(seed)
        return agent.learn(5).history["exploitability"], agent.predict(np.zeros(20, int))[0]

    (h1, a1), (h2, a2), (h3, _) = run(7), run(7), run(8)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(h1, h3)
    with pytest.raises(InvalidArgumentError, match="seed"):
        OMWU(rps()).set_random_seed(-3)


def test_get_set_parameters_round_trip(tmp_path):
    game = planted_nash(6, rank=2, seed=4)
    a = OMWU(game, learning_rate=1.5).learn(40)
    params = a.get_parameters()
    assert "logits" in params and not any(k.startswith("game_") for k in params)
    params["logits"][:] = 0.0  # a copy: the agent is untouched
    assert not np.allclose(a.logits, 0.0)
    b = OMWU(game, learning_rate=1.5)
    b.set_parameters(a.get_parameters())
    np.testing.assert_array_equal(b.policy, a.policy)
    np.testing.assert_array_equal(b.learn(10).history["last_gap"], a.learn(10).history["last_gap"][-10:])
    c = OMWU(game, learning_rate=1.5)
    c.set_parameters(a.save(tmp_path / "a.zip"))  # a saved agent's path, as SB3
    np.testing.assert_array_equal(c.average_policy, a.average_policy)
    with pytest.raises(InvalidArgumentError, match="missing"):
        c.set_parameters({"logits": a.logits})
    c.set_parameters({"logits": np.zeros(6)}, exact_match=False)
    np.testing.assert_allclose(c.policy, np.full(6, 1 / 6))
    with pytest.raises(InvalidArgumentError, match="shape"):
        c.set_parameters({"logits": np.zeros(5)}, exact_match=False)
    with pytest.raises(InvalidArgumentError, match="unknown parameters"):
        c.set_parameters({"nope": np.zeros(6)}, exact_match=False)
    grid = random_gridworld(2, n_states=5, n_actions=2, horizon=3)
    m1, m2 = OMPO(grid, learning_rate=1.0).learn(5), OMPO(grid, learning_rate=1.0)
    m2.set_parameters(m1.get_parameters())
    assert m2.exploitability("average") == m1.exploitability("average")
    np.testing.assert_array_equal(m2.learn(3).history["exploitability"],
                                  m1.learn(3).history["exploitability"][-3:])


# ------------------------------------------------------------------ prefgym's logger
def test_prefgym_logger_writes_sb3_csv_format(tmp_path):
    from stable_baselines3.common.logger import CSVOutputFormat as SB3CSV

    from prefgym.logger import CSVOutputFormat, Logger, configure

    rows = [{"a": 1}, {"a": 2, "b": 0.1 + 0.2}, {"b": np.float64(3.5), "c": "x,y"}]
    ours, theirs = CSVOutputFormat(tmp_path / "ours.csv"), SB3CSV(str(tmp_path / "sb3.csv"))
    for i, row in enumerate(rows):  # one new key per dump: SB3's column order is then fixed
        ours.write(row, dict.fromkeys(row, ("",)), i)
        theirs.write(row, dict.fromkeys(row, ("",)), i)
    ours.close()
    theirs.close()
    assert (tmp_path / "ours.csv").read_text() == (tmp_path / "sb3.csv").read_text()
    assert (tmp_path / "ours.csv").read_text().splitlines()[2] == "2,0.30000000000000004,"
    logger = configure(str(tmp_path / "log"), ["csv", "json"])
    assert isinstance(logger, Logger) and logger.get_dir() == str(tmp_path / "log")
    agent = OMWU(rps(), learning_rate=0.1, init_policy=[0.5, 0.3, 0.2])
    agent.set_logger(logger)
    agent.learn(4, log_interval=2)
    logger.close()
    lines = (tmp_path / "log" / "progress.csv").read_text().splitlines()
    assert lines[0] == "iteration,last_gap,average_gap" and len(lines) == 3
    assert float(lines[2].split(",")[1]) == agent.history["last_gap"][3]
    with pytest.raises(InvalidArgumentError, match="logger format"):
        configure(str(tmp_path / "log2"), ["nope"])
    with pytest.raises(InvalidTypeError, match="Logger API"):
        agent.set_logger(object())
    # the default logger, as SB3's: TensorBoard runs tensorboard_log/<tb_log_name>_<N>
    other = OMWU(rps(), learning_rate=0.1, init_policy=[0.5, 0.3, 0.2])
    other.tensorboard_log = str(tmp_path / "tb")
    other.learn(4, log_interval=2).learn(2, log_interval=2, tb_log_name="OMWU")
    other.learn(2, log_interval=2, reset_num_timesteps=False)
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["OMWU_1", "OMWU_2"]
    assert [s for s, _ in _scalars(tmp_path / "tb" / "OMWU_1")["last_gap"]] == [2, 4]
    assert [s for s, _ in _scalars(tmp_path / "tb" / "OMWU_2")["last_gap"]] == [2, 4]


def test_load_on_base_agent_still_dispatches(tmp_path):
    path = OMWU(rps(), learning_rate=0.1).learn(3).save(tmp_path / "x.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = BaseAgent.load(path)
    assert isinstance(agent, OMWU) and agent.num_iterations == 3


def test_core_api_works_without_sb3_or_torch(tmp_path):
    """The light install: no SB3, no torch. Same API through prefgym's callbacks and logger."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        sys.modules["stable_baselines3"] = None  # import fails, as on a core install
        sys.modules["torch"] = None
        from prefgym.agents import OMWU
        from prefgym.agents.callbacks import CallbackList, StopTrainingOnGap
        from prefgym.logger import configure
        from prefgym.games import rps
        agent = OMWU("prefgym/RPS-v0", learning_rate=0.5, init_policy=[0.6, 0.3, 0.1])
        agent.set_logger(configure({str(tmp_path)!r}, ["csv", "json"]))
        seen = []
        agent.learn(2000, callback=CallbackList([StopTrainingOnGap(1e-3),
                                                lambda loc, glob: seen.append(loc["dones"][0])]),
                    log_interval=10)
        assert type(agent.get_env()).__name__ == "MatrixGameEnv"  # a plain Gymnasium env without SB3
        torch_loaded = sys.modules.get("torch") is not None
        print(agent.num_timesteps, len(seen), all(seen), torch_loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n, calls, dones, torch_loaded = out.stdout.split()
    assert int(n) == int(calls) < 2000 and dones == "True" and torch_loaded == "False"
    rows = (tmp_path / "progress.csv").read_text().splitlines()
    assert rows[0] == "iteration,last_gap,average_gap" and len(rows) == 1 + int(n) // 10
