"""AIHF agent and the control data pipeline (Minari datasets, preference pairs, CLI)."""

from __future__ import annotations

import importlib.util

import gymnasium
import numpy as np
import pytest
import torch

from prefgym.agents.aihf import (
    AIHF,
    RewardNet,
    aihf_loss,
    learned_returns,
    reward_rank_correlation,
)
from prefgym.data.control import (
    DatasetError,
    Episode,
    PreferencePairs,
    build_preference_pairs,
    collect_episodes,
    dataset_summary,
    default_dataset_id,
    list_checkpoints,
    load_episodes,
    main,
    make_checkpoint_rollouts,
    make_demonstrations,
    scripted_policy,
    write_dataset,
)
from prefgym.envs.mujoco import LearnedRewardWrapper

HAS_MUJOCO = importlib.util.find_spec("mujoco") is not None
HAS_MINARI = importlib.util.find_spec("minari") is not None
requires_mujoco = pytest.mark.skipif(not HAS_MUJOCO, reason="needs mujoco")
requires_minari = pytest.mark.skipif(not HAS_MINARI, reason="needs minari")
PENDULUM = "Pendulum-v1"
IP = "InvertedPendulum-v5"
TINY_SAC = {"learning_starts": 100, "buffer_size": 10_000}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def graded_episodes(env_id, noises, n_episodes, seed, env_kwargs=None, tiers=None):
    """Episodes of the scripted demonstrator at several noise levels, one "checkpoint" per level."""
    episodes = []
    for k, noise in enumerate(noises):
        meta = {"checkpoint": k}
        if tiers is not None:
            meta["tier"] = tiers[k]
        episodes += collect_episodes(env_id, scripted_policy(env_id, noise, seed + k), n_episodes=n_episodes,
                                     seed=seed + 100 * k, env_kwargs=env_kwargs, metadata=meta)
    return episodes


def held_out(env_id, noises, env_kwargs=None):
    """Held-out trajectories from expert to random: scripted at several noise levels, plus random actions."""
    eps = graded_episodes(env_id, noises, 3, seed=5000, env_kwargs=env_kwargs)
    return eps + collect_episodes(env_id, None, n_episodes=4, seed=9000, env_kwargs=env_kwargs)


# ------------------------------------------------------------- the loss (Eq. 19)
def test_loss_gradient_is_eq19_for_a_linear_reward():
    torch.manual_seed(0)
    net = RewardNet(3, 1, hidden_sizes=(), clamp_magnitude=None)
    B, L = 8, 4
    demo = (torch.randn(B, 3), torch.rand(B, 1) * 2 - 1)
    agent = (torch.randn(B, 3), torch.rand(B, 1) * 2 - 1)
    prefs = {"obs_a": torch.randn(B, L, 3), "act_a": torch.rand(B, L, 1), "w_a": torch.ones(B, L),
             "obs_b": torch.randn(B, L, 3), "act_b": torch.rand(B, L, 1), "w_b": torch.ones(B, L),
             "y": torch.tensor([1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0])}
    prefs["w_b"][:, -1] = 0.0  # a padded step does not count
    w1, w2 = 0.7, 1.3
    loss, stats = aihf_loss(net, demo, agent, prefs, w1, w2)
    net.zero_grad()
    loss.backward()
    grad = net.mlp[0].weight.grad.reshape(-1).numpy()
    # closed form: -g = -(w1 g1 + g2) with features phi(s, a) = (s, a) for r = w . phi + b
    phi = lambda o, a: torch.cat([o, a], -1).numpy()  # noqa: E731
    g1 = phi(*demo).mean(0) - phi(*agent).mean(0)  # E_D[grad r] - E_pi[grad r]     (Eq. 18)
    Fa = (phi(prefs["obs_a"], prefs["act_a"]) * prefs["w_a"].numpy()[..., None]).sum(1)
    Fb = (phi(prefs["obs_b"], prefs["act_b"]) * prefs["w_b"].numpy()[..., None]).sum(1)
    with torch.no_grad():  # R_a - R_b, the bias counted once per valid step
        d = (Fa - Fb) @ net.mlp[0].weight.reshape(-1).numpy() \
            + net.mlp[0].bias.item() * (prefs["w_a"].sum(1) - prefs["w_b"].sum(1)).numpy()
    g2 = ((prefs["y"].numpy() - 1 / (1 + np.exp(-d)))[:, None] * (Fa - Fb)).mean(0)  # Eq. (17a)
    assert np.allclose(-grad, w1 * g1 + w2 * g2, atol=1e-5)
    assert stats["pref_accuracy"] == stats["pref_accuracy"]  # defined: some labels are decided
    # terms switch off
    only_pref, s = aihf_loss(net, None, None, prefs, w1, w2)
    assert "demo_loss" not in s and only_pref.item() == pytest.approx(w2 * stats["pref_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="agent samples"):
        aihf_loss(net, demo, None, None)


# ------------------------------------------------------------- learning the reward on the cheap tasks
@requires_mujoco
def test_aihf_reward_ranks_held_out_trajectories_on_inverted_pendulum():
    kw = {"max_episode_steps": 200}
    demos = collect_episodes(IP, scripted_policy(IP), n_episodes=5, seed=0, env_kwargs=kw)
    rollouts = graded_episodes(IP, [3.0, 2.0, 1.6, 1.2], 8, seed=0, env_kwargs=kw)
    prefs = build_preference_pairs(rollouts, 300, segment_length=50, teacher="oracle", tiers=None, env_id=IP)
    test = held_out(IP, [0.0, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 5.0], env_kwargs=kw)
    agent = AIHF(gymnasium.make(IP, **kw), demos, prefs, reward_lr=1e-3, reward_steps_per_iter=50,
                 sac_steps_per_iter=300, sac_kwargs=TINY_SAC, seed=0)
    agent.learn(1500)
    rho = reward_rank_correlation(agent, test)
    assert rho > 0.8, rho
    assert agent.num_iterations == 5 and agent.sac.num_timesteps == 1500
    last = agent.history[-1]
    assert last["reward_expert"] > last["reward_agent"] and last["pref_accuracy"] > 0.8


@pytest.fixture(scope="module")
def pendulum_data(tmp_path_factory):
    """Ranked rollouts and demonstrations on Pendulum, as Minari datasets, and pairs as an .npz."""
    if not HAS_MINARI:
        pytest.skip("needs minari")
    root = tmp_path_factory.mktemp("minari")
    noises = [6.0, 4.0, 3.0, 2.0, 1.0, 0.0]  # "checkpoints" in training order: worse to better
    policies = [(100 * (k + 1), scripted_policy(PENDULUM, n, k)) for k, n in enumerate(noises)]
    ds = make_checkpoint_rollouts(PENDULUM, policies, steps_per_checkpoint=600, root=root, seed=0)
    rollouts_id = ds.spec.dataset_id
    demos = make_demonstrations(PENDULUM, source=rollouts_id, tier="high", root=root)
    prefs = build_preference_pairs(rollouts_id, 400, segment_length=25, teacher="oracle",
                                   tiers=("low", "medium"), root=root, seed=0)
    path = prefs.save(root / "pendulum_prefs.npz")
    return {"root": root, "rollouts": rollouts_id, "demos": demos.spec.dataset_id, "prefs": path,
            "pairs": prefs}


@pytest.fixture(scope="module")
def pendulum_agent(pendulum_data):
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(pendulum_data["root"]))  # the agent reads ids from Minari's root
    try:
        torch.set_num_threads(1)
        agent = AIHF(PENDULUM, demonstrations=pendulum_data["demos"], preferences=str(pendulum_data["prefs"]),
                     reward_lr=1e-3, reward_steps_per_iter=50, sac_steps_per_iter=300, sac_kwargs=TINY_SAC,
                     seed=0)
        agent.learn(1500)
    finally:
        mp.undo()
    return agent


def test_aihf_from_minari_files_ranks_held_out_trajectories_on_pendulum(pendulum_agent):
    test = held_out(PENDULUM, [0.0, 1.0, 2.0, 3.0, 4.0, 6.0])
    rho = reward_rank_correlation(pendulum_agent, test)
    assert rho > 0.8, rho
    assert pendulum_agent.mode == "aihf" and pendulum_agent.w_demo > 0 and pendulum_agent.w_pref > 0


def test_rlhf_mode_fits_the_reward_on_preferences_then_freezes_it(pendulum_data):
    agent = AIHF(PENDULUM, preferences=pendulum_data["pairs"], mode="rlhf", reward_lr=1e-3,
                 reward_pretrain_steps=300, sac_steps_per_iter=100, sac_kwargs=TINY_SAC, seed=0)
    assert agent.w_demo == 0.0 and not agent.updates_reward
    agent.learn(0)  # reward model (Eq. 3) only
    test = held_out(PENDULUM, [0.0, 1.0, 2.0, 3.0, 4.0, 6.0])
    assert reward_rank_correlation(agent, test) > 0.8
    before = [p.detach().clone() for p in agent.reward_net.parameters()]
    agent.learn(200)  # SAC on the frozen reward (Eq. 4)
    assert all(torch.equal(a, b) for a, b in zip(before, agent.reward_net.parameters(), strict=True))
    assert agent.history[0]["iteration"] == -1 and "pretrain_pref_loss" in agent.history[0]


def test_irl_mode_uses_demonstrations_alone(pendulum_data):
    demos = load_episodes(pendulum_data["demos"], env_id=PENDULUM, root=pendulum_data["root"])
    with pytest.raises(ValueError, match="needs demonstrations"):
        AIHF(PENDULUM, mode="irl", sac_kwargs=TINY_SAC).learn(10)
    agent = AIHF(PENDULUM, demonstrations=demos, mode="irl", reward_lr=1e-3, reward_steps_per_iter=20,
                 sac_steps_per_iter=200, sac_kwargs=TINY_SAC, seed=0)
    assert agent.w_pref == 0.0 and agent.preferences is None
    agent.learn(400)
    assert all("pref_loss" not in row for row in agent.history)
    assert agent.history[-1]["reward_expert"] > agent.history[-1]["reward_agent"]


def test_bc_init_moves_the_actor_towards_the_demonstrations(pendulum_data):
    demos = load_episodes(pendulum_data["demos"], env_id=PENDULUM, root=pendulum_data["root"])
    agent = AIHF(PENDULUM, demonstrations=demos, preferences=pendulum_data["pairs"], mode="rlhf",
                 bc_steps=300, reward_pretrain_steps=10, sac_kwargs=TINY_SAC, seed=0)
    obs = np.concatenate([e.observations[:-1] for e in demos])
    act = np.concatenate([e.actions for e in demos])
    err = lambda: np.abs(agent.predict(obs, deterministic=True)[0] - act).mean()  # noqa: E731
    before = err()
    agent.learn(0)
    assert err() < 0.7 * before and np.isfinite(agent.history[0]["bc_nll"])


# ------------------------------------------------------------- the inner loop, API, persistence
def test_replay_samples_are_relabelled_with_the_current_reward(pendulum_agent):
    rb = pendulum_agent.sac.replay_buffer
    batch = rb.sample(64)
    with torch.no_grad():
        expected = pendulum_agent.reward_net(batch.observations, batch.actions)
    assert torch.allclose(batch.rewards.reshape(-1), expected)
    # the public reward takes env-unit actions: same numbers
    low, high = pendulum_agent.sac.action_space.low, pendulum_agent.sac.action_space.high
    env_act = low + (batch.actions.numpy() + 1) / 2 * (high - low)
    got = pendulum_agent.reward(batch.observations.numpy(), env_act)
    assert np.allclose(got, expected.numpy(), atol=1e-5)


def test_sb3_callbacks_progress_bar_and_stopping(pendulum_data):
    from stable_baselines3.common.callbacks import BaseCallback

    class Count(BaseCallback):
        def __init__(self, stop_at=None):
            super().__init__()
            self.steps, self.starts, self.stop_at = 0, 0, stop_at

        def _on_training_start(self):
            self.starts += 1

        def _on_step(self):
            self.steps += 1
            return self.stop_at is None or self.steps < self.stop_at

    agent = AIHF(PENDULUM, preferences=pendulum_data["pairs"], mode="rlhf", reward_pretrain_steps=5,
                 sac_steps_per_iter=60, sac_kwargs={**TINY_SAC, "learning_starts": 50}, seed=0)
    counter, calls = Count(), []
    agent.learn(180, callback=[counter, lambda loc, glob: calls.append(1) or True], progress_bar=True)
    assert counter.steps == 180 and counter.starts == 1 and len(calls) == 180  # one start per learn call
    assert agent.num_iterations == 3
    stopper = Count(stop_at=70)
    agent.learn(600, callback=stopper)
    assert agent.sac.num_timesteps == 180 + 70 and agent.num_iterations == 4  # the stopped chunk adds none


def test_save_and_load_round_trip(pendulum_agent, pendulum_data, tmp_path):
    path = pendulum_agent.save(tmp_path / "aihf")
    assert path.suffix == ".zip"
    loaded = AIHF.load(path)
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    act = np.random.default_rng(1).uniform(-2, 2, size=(16, 1))
    assert np.allclose(loaded.reward(obs, act), pendulum_agent.reward(obs, act))
    assert np.allclose(loaded.predict(obs, deterministic=True)[0],
                       pendulum_agent.predict(obs, deterministic=True)[0])
    assert loaded.num_iterations == pendulum_agent.num_iterations and loaded.history == pendulum_agent.history
    assert loaded.sac.num_timesteps == pendulum_agent.sac.num_timesteps
    # continue training with the data
    cont = AIHF.load(path, preferences=pendulum_data["pairs"], mode="rlhf", reward_pretrain_steps=0)
    cont.learn(120)
    assert cont.sac.num_timesteps == pendulum_agent.sac.num_timesteps + 120
    with pytest.raises(ValueError, match="needs demonstrations"):
        AIHF.load(path).learn(10)  # aihf mode, no data given


def test_learned_reward_wrapper_uses_the_agent_reward(pendulum_agent):
    env = LearnedRewardWrapper(gymnasium.make(PENDULUM), pendulum_agent)
    obs, _ = env.reset(seed=0)
    a = np.array([0.3], np.float32)
    _, r, _, _, info = env.step(a)
    assert r == pytest.approx(float(pendulum_agent.reward(obs[None], a[None])[0]), rel=1e-5)
    eps = collect_episodes(PENDULUM, None, n_episodes=2, seed=0)
    assert learned_returns(pendulum_agent, eps).shape == (2,)


def test_agent_input_validation(pendulum_data):
    with pytest.raises(ValueError, match="mode"):
        AIHF(PENDULUM, mode="dpo")
    with pytest.raises(ValueError, match="observations"):
        AIHF(PENDULUM, demonstrations=(np.zeros((5, 4)), np.zeros((5, 1))), sac_kwargs=TINY_SAC)
    with pytest.raises(TypeError, match="demonstrations"):
        AIHF(PENDULUM, demonstrations=3, sac_kwargs=TINY_SAC)
    with pytest.raises(DatasetError, match="recorded on 'Pendulum-v1', not 'MountainCarContinuous-v0'"):
        AIHF("MountainCarContinuous-v0", preferences=str(pendulum_data["prefs"]), sac_kwargs=TINY_SAC)
    with pytest.raises(TypeError, match="Box"):
        AIHF("CartPole-v1")


# ------------------------------------------------------------- datasets
@requires_minari
def test_minari_round_trip_tiers_and_errors(pendulum_data, tmp_path, monkeypatch):
    root = pendulum_data["root"]
    eps = load_episodes(pendulum_data["rollouts"], env_id=PENDULUM, root=root)
    assert len(eps) == 6 * 3 and all(e.length == 200 for e in eps)
    tiers = dataset_summary(eps)
    assert set(tiers) == {"low", "medium", "high"}
    assert tiers["low"]["mean_return"] < tiers["medium"]["mean_return"] < tiers["high"]["mean_return"]
    assert {e.metadata["checkpoint"] for e in eps if e.metadata["tier"] == "high"} == {4, 5}
    assert eps[0].metadata["checkpoint_steps"] == 100 and "return" in eps[0].metadata
    demos = load_episodes(pendulum_data["demos"], env_id=PENDULUM, root=root, kind="demos")
    assert len(demos) == 6 and all(e.metadata["tier"] == "high" for e in demos)
    # write / read exactly
    ep = Episode(np.arange(9, dtype=np.float32).reshape(3, 3), np.array([[0.5], [-1.0]], np.float32),
                 np.array([1.0, 2.0]), False, True, {"note": "x"})
    write_dataset("prefgym/test/tiny-v0", [ep], PENDULUM, root=tmp_path)
    back = load_episodes("prefgym/test/tiny-v0", env_id=PENDULUM, root=tmp_path)[0]
    assert np.array_equal(back.observations, ep.observations) and np.array_equal(back.actions, ep.actions)
    assert back.truncated and not back.terminated and back.metadata == {"note": "x"}
    with pytest.raises(DatasetError, match="already exists"):
        write_dataset("prefgym/test/tiny-v0", [ep], PENDULUM, root=tmp_path)
    write_dataset("prefgym/test/tiny-v0", [ep, ep], PENDULUM, root=tmp_path, overwrite=True)
    # MINARI_DATASETS_PATH is respected when no root is given
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert len(load_episodes("prefgym/test/tiny-v0")) == 2
    # clear errors naming the dataset
    with pytest.raises(DatasetError, match=r"'prefgym/Pendulum-v1/nothing-v0' not found under"):
        load_episodes("prefgym/Pendulum-v1/nothing-v0", root=tmp_path)
    with pytest.raises(DatasetError, match=r"'prefgym/test/tiny-v0' was recorded on 'Pendulum-v1', "
                                           r"not 'Hopper-v5'"):
        load_episodes("prefgym/test/tiny-v0", env_id="Hopper-v5", root=tmp_path)
    with pytest.raises(DatasetError, match="holds 'demos' data, not 'checkpoints'"):
        load_episodes(pendulum_data["demos"], root=root, kind="checkpoints")
    with pytest.raises(DatasetError, match="no episodes of tiers"):
        load_episodes(pendulum_data["rollouts"], root=root, tiers=["expert"])
    assert default_dataset_id("Hopper-v5", "demos") == "prefgym/Hopper-v5/demos-v0"


@requires_minari
def test_preference_pairs_come_from_different_checkpoints(pendulum_data, tmp_path):
    pairs = pendulum_data["pairs"]
    assert len(pairs) == 400 and pairs.segment_length == 25 and pairs.env_id == PENDULUM
    assert pairs.accuracy() == 1.0  # the oracle
    assert pairs.info["tiers"] == ["low", "medium"] and pairs.info["teacher"]["temperature"] == 0.0
    eps = load_episodes(pendulum_data["rollouts"], root=pendulum_data["root"])
    # T-REX labels: by checkpoint rank, between different checkpoints only
    trex = build_preference_pairs(eps, 200, segment_length=None, label_by="checkpoint", seed=1)
    assert set(np.unique(trex.labels)) <= {0.0, 1.0} and trex.obs_a.shape[1] == 200
    assert trex.accuracy() > 0.7
    # a noisy teacher: mistakes lower the agreement with the true return
    noisy = build_preference_pairs(eps, 300, segment_length=25, teacher={"eps_mistake": 0.3}, seed=2)
    assert noisy.accuracy() < 0.85
    # Pendulum's rewards are negative: B-Pref's relative skip threshold does not fit, so set it
    skip = build_preference_pairs(eps, 50, segment_length=25, teacher={"skip_threshold": -60.0}, seed=3)
    assert skip.info["queries"] > 50 and np.maximum(skip.returns_a, skip.returns_b).min() > -60.0
    # save / load with env checks
    path = pairs.save(tmp_path / "p")
    assert path.name == "p.npz"
    back = PreferencePairs.load(tmp_path / "p", env_id=PENDULUM)
    assert np.array_equal(back.labels, pairs.labels) and np.array_equal(back.mask_b, pairs.mask_b)
    with pytest.raises(DatasetError, match=r"recorded on 'Pendulum-v1', not 'Hopper-v5'"):
        PreferencePairs.load(path, env_id="Hopper-v5")
    with pytest.raises(DatasetError, match="not found"):
        PreferencePairs.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pairs.subset(slice(0, 2)).__class__(**{**{k: getattr(pairs, k)[:2] for k in pairs._ARRAYS},
                                              "labels": np.array([0.5, np.nan])})


@requires_minari
def test_cli_pipeline_expert_rollouts_demos_preferences(tmp_path, capsys):
    root, run = tmp_path / "minari", tmp_path / "expert"
    common = ["--env", PENDULUM, "--no-progress"]
    sac = ('{"learning_starts": 50, "buffer_size": 1000, "batch_size": 32, '
           '"policy_kwargs": {"net_arch": [16]}}')
    assert main(["expert", *common, "--timesteps", "150", "--checkpoints", "3", "--out", str(run),
                 "--sac-kwargs", sac]) == 0
    ckpts = list_checkpoints(run, PENDULUM)
    assert [s for s, _ in ckpts] == [50, 100, 150]
    with pytest.raises(DatasetError, match="trained on 'Pendulum-v1', not 'Hopper-v5'"):
        list_checkpoints(run, "Hopper-v5")
    assert main(["rollouts", *common, "--expert", str(run), "--steps-per-checkpoint", "200",
                 "--root", str(root)]) == 0
    assert "low: return" in capsys.readouterr().out
    rollouts = default_dataset_id(PENDULUM, "checkpoints")
    assert main(["demos", *common, "--from-rollouts", rollouts, "--root", str(root)]) == 0
    assert main(["preferences", *common, "--root", str(root), "--pairs", "30", "--segment-length", "20",
                 "--out", str(tmp_path / "prefs.npz")]) == 0
    assert len(PreferencePairs.load(tmp_path / "prefs.npz", env_id=PENDULUM)) == 30
    # errors: one line on stderr, exit code 2
    capsys.readouterr()
    assert main(["preferences", *common, "--root", str(root), "--rollouts", "prefgym/none/missing-v0",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "'prefgym/none/missing-v0' not found" in capsys.readouterr().err
    assert main(["demos", "--env", "Hopper-v5", "--from-rollouts", rollouts, "--root", str(root)]) == 2
    assert "recorded on 'Pendulum-v1', not 'Hopper-v5'" in capsys.readouterr().err
    assert main(["demos", *common, "--root", str(root)]) == 2
    assert main(["rollouts", *common, "--expert", str(tmp_path / "nothing"), "--root", str(root)]) == 2
    assert "no SAC checkpoints" in capsys.readouterr().err


def test_reward_net_outputs_and_normalization():
    net = RewardNet(3, 1, output_activation="softplus", clamp_magnitude=2.0)
    r = net(torch.randn(100, 3) * 100, torch.rand(100, 1))
    assert r.min() >= 0 and r.max() <= 2.0
    obs = np.random.default_rng(0).normal(5.0, 3.0, size=(500, 3))
    net.set_normalization(obs)
    assert np.allclose(net.obs_mean.numpy(), obs.mean(0), atol=1e-4)
    state_only = RewardNet(3, 1, use_action=False)
    assert state_only(torch.zeros(4, 3)).shape == (4,)
    with pytest.raises(ValueError, match="output_activation"):
        RewardNet(3, 1, output_activation="exp")


def test_default_estimator_is_004s_weights_and_one_temperature(pendulum_data):
    from prefgym.agents.aihf_estimator import paper_weights
    from prefgym.errors import InvalidArgumentError

    pairs = pendulum_data["pairs"]  # 400 pairs of 25-step segments
    rng = np.random.default_rng(0)
    demos = (rng.normal(size=(100, 3)).astype(np.float32),
             rng.uniform(-2, 2, size=(100, 1)).astype(np.float32))
    agent = AIHF(PENDULUM, demonstrations=demos, preferences=pairs, sac_kwargs=TINY_SAC, seed=0)
    # Eq. 34: |D| = 100 steps / 25 = 4 segments, |P| = 400 pairs; both terms summed over 25 steps
    assert (agent.w_demo, agent.w_pref) == paper_weights(4, 400) and agent.horizon == 25.0
    # one temperature: SAC's entropy coefficient is the preference model's beta
    assert agent.temperature == 0.2 and agent.sac.ent_coef_tensor.item() == pytest.approx(0.2)
    hot = AIHF(PENDULUM, demos, pairs, temperature=0.5, w_demo=1.0, sac_kwargs=TINY_SAC, seed=0)
    assert hot.sac.ent_coef_tensor.item() == pytest.approx(0.5) and hot.w_demo == 1.0
    assert hot.w_pref == paper_weights(4, 400)[1]
    with pytest.raises(InvalidArgumentError, match="one temperature"):
        AIHF(PENDULUM, demos, pairs, temperature=0.5, sac_kwargs={**TINY_SAC, "ent_coef": 0.2})
    with pytest.raises(InvalidArgumentError, match="fixed SAC ent_coef"):
        AIHF(PENDULUM, demos, pairs, sac_kwargs={**TINY_SAC, "ent_coef": "auto"})
    assert AIHF(PENDULUM, demos, pairs, mode="rlhf", sac_kwargs=TINY_SAC).w_pref == 1.0
