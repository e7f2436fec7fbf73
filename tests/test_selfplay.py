"""prefgym.selfplay: snapshot pools, the self-play env, its callback and the exact tabular read-out."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import torch  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import SubprocVecEnv  # noqa: E402

from prefgym.envs import make_parallel  # noqa: E402
from prefgym.errors import InvalidArgumentError, InvalidTypeError  # noqa: E402
from prefgym.games import MatrixGame  # noqa: E402
from prefgym.games.gridworld import random_gridworld  # noqa: E402
from prefgym.selfplay import (  # noqa: E402
    ExploitabilityCallback,
    SelfPlayCallback,
    SelfPlayEnv,
    SnapshotPool,
    StepObservation,
    frozen_policy,
    make_selfplay_vec_env,
    policy_from_occupancy,
    snapshot_timesteps,
    tabular_policy,
)


class FixedAction:
    """An opponent that always plays one action (a stand-in snapshot with SB3's predict)."""

    def __init__(self, action: int):
        self.action = action
        self.seen: list = []

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        self.seen.append(np.asarray(obs).copy())
        return np.array(self.action), None


def test_pool_keeps_newest_and_samples_by_rule():
    pool = SnapshotPool(max_size=2, sampling="latest")
    assert pool.sample(np.random.default_rng(0)) is None
    for t in (0, 10, 20):
        pool.add(FixedAction(t), timestep=t)
    assert pool.timesteps == [10, 20] and pool.num_added == 3
    assert pool.sample(np.random.default_rng(0)) == 1
    uni = SnapshotPool(max_size=3, sampling="uniform")
    for t in range(3):
        uni.add(FixedAction(t), t)
    draws = np.bincount([uni.sample(np.random.default_rng(i)) for i in range(300)], minlength=3)
    assert draws.min() > 70  # each of 3 about 100 times
    with pytest.raises(InvalidArgumentError, match="sampling"):
        SnapshotPool(sampling="best")
    with pytest.raises(InvalidArgumentError, match="pool_size"):
        SnapshotPool(max_size=0)
    with pytest.raises(InvalidTypeError):
        pool.add(object())


def test_env_pays_the_learner_against_the_snapshot():
    env = SelfPlayEnv("prefgym/RPS-v0", pool_size=1, sampling="latest")
    obs, info = env.reset(seed=0)
    assert info["opponent_snapshot"] == -1  # random before the first snapshot
    env.add_snapshot(FixedAction(0), timestep=7)  # always action 0; P[2, 0] = 1, P[1, 0] = 0
    obs, info = env.reset(seed=1)
    assert obs == 3 and info["opponent_snapshot"] == 7
    _, reward, terminated, truncated, info = env.step(2)
    assert reward == 1.0 and terminated and not truncated and info["opponent_action"] == 0
    env.reset(seed=2)
    assert env.step(1)[1] == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(InvalidArgumentError, match="agent must be one of"):
        SelfPlayEnv(make_parallel("prefgym/RPS-v0"), agent="player_7")
    with pytest.raises(InvalidArgumentError, match="unknown parallel env"):
        SelfPlayEnv("prefgym/Nope-v0")


def test_observe_step_encodes_h_for_both_players():
    game = random_gridworld(seed=11)
    env = SelfPlayEnv("prefgym/GridworldRandom-v0", env_kwargs={"game": game}, observe_step=True)
    assert list(env.observation_space.nvec) == [game.horizon, game.n_states]
    opp = FixedAction(0)
    env.add_snapshot(opp)
    obs, _ = env.reset(seed=0)
    steps = [obs]
    done = False
    while not done:
        obs, _, done, _, info = env.step(1)
        steps.append(obs)
    assert len(steps) == game.horizon + 1
    assert [int(o[0]) for o in steps] == [0, 1, 2, 3, 4, 4]  # h, capped at H - 1 after the end
    assert [int(o[0]) for o in opp.seen] == [0, 1, 2, 3, 4]  # the opponent sees its own (h, s)
    single = StepObservation(__import__("gymnasium").make("prefgym/GridworldRandom-v0", game=game))
    o, _ = single.reset(seed=0)
    assert single.observation_space == env.observation_space and int(o[0]) == 0


def test_observe_step_on_a_box_env():
    env = SelfPlayEnv("prefgym/PendulumPreference-v0", env_kwargs={"horizon": 4, "segment_length": 2},
                      observe_step=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs[-1] == 0.0
    obs, *_ = env.step(env.action_space.sample())
    assert obs[-1] == pytest.approx(0.25)


def _set_policy(model, probs):
    """Make a PPO policy output ``probs`` at every observation (zero weights, log-prob bias)."""
    with torch.no_grad():
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.copy_(torch.log(torch.as_tensor(probs, dtype=torch.float32)))


def test_tabular_readout_and_exact_exploitability(one_thread):
    game = random_gridworld(seed=11)
    env = make_selfplay_vec_env("prefgym/GridworldRandom-v0", env_kwargs={"game": game}, observe_step=True)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0)
    p = np.array([0.6, 0.3, 0.1])
    _set_policy(model, p)
    pi = tabular_policy(model, game)
    assert pi.shape == game.policy_shape
    np.testing.assert_allclose(pi, np.broadcast_to(p, pi.shape), atol=1e-6)
    cb = ExploitabilityCallback(game, eval_every=10_000)
    model.learn(1, callback=cb)  # evaluates at the start and at the end
    assert cb.timesteps[0] == 0
    assert cb.exploitability[0] == pytest.approx(float(game.exploitability(np.broadcast_to(p, pi.shape))),
                                                 abs=1e-5)
    # the average iterate of one read-out is the read-out itself
    assert cb.average_exploitability[0] == pytest.approx(cb.exploitability[0], abs=1e-9)


def test_policy_from_occupancy_mixes_two_policies_exactly():
    game = random_gridworld(seed=11)
    rng = np.random.default_rng(0)
    a, b = (rng.dirichlet(np.ones(game.n_actions), size=game.policy_shape[:-1]) for _ in range(2))
    mix = policy_from_occupancy(game.occupancy(a) + game.occupancy(b))
    # the value is linear in the occupancy: the mixture's value is the mean of the values
    opp = game.uniform_policy()
    assert float(game.value(mix, opp)) == pytest.approx(0.5 * float(game.value(a, opp) + game.value(b, opp)))


def test_ppo_selfplay_finds_the_condorcet_winner(one_thread):
    # Bradley-Terry game with scores 0, 1, 2: action 2 beats both others; the NE is pure
    s = np.array([0.0, 1.0, 2.0])
    game = MatrixGame(1 / (1 + np.exp(-(s[:, None] - s[None, :]))))
    env = make_selfplay_vec_env("prefgym/MatrixGame-v0", n_envs=2, env_kwargs={"game": game}, seed=0,
                                pool_size=3, sampling="uniform")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, learning_rate=3e-3, seed=0)
    cb = SelfPlayCallback(snapshot_every=512)
    uniform_e = float(game.exploitability(np.full(3, 1 / 3)))
    model.learn(2048, callback=cb)
    assert snapshot_timesteps(env) == [1024, 1536, 2048]  # newest 3 of 0, 512, ..., 2048
    assert cb.num_snapshots == 5
    with torch.no_grad():
        probs = model.policy.get_distribution(model.policy.obs_to_tensor(np.array([3]))[0]).distribution.probs
    probs = probs.numpy()[0].astype(float)
    assert probs[2] > 0.9
    assert float(game.exploitability(probs / probs.sum())) < 0.2 * uniform_e


def test_callback_reaches_subprocess_envs(one_thread):
    env = make_selfplay_vec_env("prefgym/RPS-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                                vec_env_kwargs={"start_method": "fork"}, pool_size=2, sampling="latest")
    try:
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0)
        model.learn(128, callback=SelfPlayCallback(snapshot_every=64))
        pools = env.get_attr("pool")
        assert [p.timesteps for p in pools] == [[64, 128], [64, 128]]
    finally:
        env.close()


def test_callback_refuses_plain_envs():
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(lambda: __import__("gymnasium").make("prefgym/RPS-v0"), n_envs=1)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16)
    with pytest.raises(InvalidArgumentError, match="SelfPlayEnv"):
        model.learn(16, callback=SelfPlayCallback(8))


def test_frozen_policy_is_a_detached_copy():
    env = make_selfplay_vec_env("prefgym/RPS-v0")
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=0)
    snap = frozen_policy(model)
    assert all(not p.requires_grad for p in snap.parameters())
    assert snap.optimizer is None and model.policy.optimizer is not None
    before = [p.clone() for p in snap.parameters()]
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, snap.parameters(), strict=True))
    with pytest.raises(InvalidTypeError):
        frozen_policy(object())


def test_module_example_runs(one_thread):
    import doctest

    import prefgym.selfplay

    result = doctest.testmod(prefgym.selfplay, optionflags=doctest.ELLIPSIS)
    assert result.attempted == 5 and result.failed == 0


def test_classify_rule():
    from prefgym.reproductions.selfplay_gridworld import classify

    assert classify([1.0, 0.5, 0.1, 0.05, 0.04, 0.03], 1.0) == "converges"
    assert classify([1.0, 0.5, 0.2, 0.6, 0.2, 0.6], 1.0) == "cycles"
    assert classify([1.0, 0.8, 0.7, 0.7, 0.7, 0.69], 1.0) == "stalls"


def test_reproduction_runs_small(tmp_path, monkeypatch, one_thread):
    from prefgym.reproductions import get_reproduction, selfplay_gridworld

    monkeypatch.setitem(selfplay_gridworld.SIZES, True, {"seeds": (11,), "steps": 1024, "ompo_updates": 30})
    summary = get_reproduction("selfplay-gridworld").run(tmp_path, quick=True, progress=False)
    row = summary["per_game"][11]
    assert row["S"] == 14 and row["A"] == 3
    assert row["ppo_uniform"]["class"] in ("converges", "cycles", "stalls")
    assert len(summary["verdicts"]) == 4 and all(v.startswith(("held", "did not hold"))
                                                 for v in summary["verdicts"].values())
    lines = (tmp_path / "selfplay_gridworld_curves.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 2 + 30  # header, 2 pools x evaluations at 0 and 1024, 30 OMPO updates
    assert (tmp_path / "selfplay_gridworld.png").stat().st_size > 10_000
    assert summary["cpu_s"] > 0 and "smoke checks" in summary["note"]


@pytest.mark.parametrize("env_id", ["prefgym/RPS-v0", "prefgym/GridworldRandom-v0"])
def test_selfplay_env_passes_both_checkers(env_id, recwarn):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = SelfPlayEnv(env_id, observe_step=True)
    env.add_snapshot(FixedAction(0))
    check_env(env, skip_render_check=True)
    sb3_check_env(env)
    assert not [w for w in recwarn if "WARN" in str(w.message) or "recommend" in str(w.message)]
