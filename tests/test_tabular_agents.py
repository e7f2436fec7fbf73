"""Tabular NLHF solvers: closed forms, exact solvers and the papers' claims."""

import numpy as np
import pytest

from prefgym.agents import (
    AGENTS,
    EGPO,
    MMD,
    MPO,
    MWU,
    OMWU,
    ONPO,
    SPO,
    SPPO,
    BaseAgent,
    NashMD,
    StopTrainingOnGap,
    get_agent_class,
)
from prefgym.agents.callbacks import BaseCallback
from prefgym.games import planted_nash, random_skew_symmetric, rps, transitive
from prefgym.simplex import kl, softmax

BIASED = np.array([0.6, 0.3, 0.1])


def regularized_nash(game, magnet, alpha, iters=20_000):
    """Independent solver: damped fixed point of pi ~ magnet exp(A pi / alpha)."""
    pi = magnet.copy()
    for _ in range(iters):
        z = magnet * np.exp(game.payoff_vector(pi) / alpha)
        pi = 0.9 * pi + 0.1 * z / z.sum()
    return pi


def test_md_last_iterate_cycles_while_average_converges_on_rps():
    agent = MWU(rps(), learning_rate=0.1, init_policy=BIASED).learn(10_000)
    h = agent.history
    assert h["last_gap"].shape == (10_000,)
    assert h["last_gap"][-1] > 0.5  # 000 Fig. 3: spirals out, no last-iterate convergence
    assert h["average_gap"][-1] < 1e-2  # average iterate converges
    assert np.allclose(agent.average_policy, 1 / 3, atol=1e-2)


def test_omwu_last_iterate_converges_linearly_on_planted_game():
    game = planted_nash(10, 3, seed=0)
    gaps = OMWU(game, learning_rate=2.0).learn(20_000).history["last_gap"]
    assert gaps[-1] < 1e-6  # 002 Theorem 2
    # linear tail: the gap is noisy (002 Remark 7), its max over windows of 1000
    # updates falls geometrically, a straight line on a log scale
    envelope = np.log(gaps.reshape(20, 1000).max(axis=1))
    assert np.all(np.diff(envelope) < 0)
    t = np.arange(2, 20)
    slope, intercept = np.polyfit(t, envelope[2:], 1)
    residual = envelope[2:] - (slope * t + intercept)
    assert slope < -0.5 and 1 - residual.var() / envelope[2:].var() > 0.99


def test_omwu_on_rps_reaches_uniform_nash():
    agent = OMWU(rps(), learning_rate=0.5, init_policy=BIASED).learn(3000)
    assert agent.history["last_gap"][-1] < 1e-8
    assert np.allclose(agent.policy, 1 / 3, atol=1e-8)


def test_exact_onpo_equals_omwu_and_exact_sppo_equals_md():
    game = random_skew_symmetric(7, seed=4)
    omwu = OMWU(game, learning_rate=0.8).learn(300)
    onpo = ONPO(game, learning_rate=0.8, inner_steps=None).learn(300)
    assert np.allclose(omwu.policy, onpo.policy, atol=1e-12)
    md = MWU(game, learning_rate=0.3).learn(300)
    sppo = SPPO(game, learning_rate=0.3, inner_steps=None).learn(300)
    assert np.allclose(md.policy, sppo.policy, atol=1e-12)
    # with a finite nested solver the iterates differ from the exact rule
    nested = SPPO(game, learning_rate=0.3, inner_steps=2).learn(300)
    assert not np.allclose(md.policy, nested.policy, atol=1e-4)


def test_mmd_fixed_magnet_converges_linearly_to_regularized_nash():
    game = random_skew_symmetric(10, seed=0)
    eta, alpha = 0.1, 0.5
    magnet = np.ones(10) / 10
    target = regularized_nash(game, magnet, alpha)
    kls = []

    class KL(BaseCallback):
        def _on_step(self):
            kls.append(kl(target, self.agent.policy))
            return True

    agent = MMD(game, learning_rate=eta, alpha=alpha).learn(400, callback=KL())
    assert np.allclose(agent.policy, target, atol=1e-9)
    # 000 Thm 3.2: KL(pi_r* || pi^{k+1}) <= KL(pi_r* || pi^1) (1 + eta alpha)^{-k}
    k = np.arange(1, 401)
    bound = kl(target, magnet) * (1 + eta * alpha) ** (-k.astype(float))
    assert np.all(np.array(kls) <= bound + 1e-15)
    # ... and the regularized NE is not the NE of the game
    assert agent.history["last_gap"][-1] > 0.05


def test_mpo_magnet_refresh_reaches_the_original_nash():
    game = random_skew_symmetric(10, seed=0)
    agent = MPO(game).learn(5000)
    assert agent.history["last_gap"][-1] < 1e-6
    assert np.allclose(agent.policy, game.nash_equilibrium(), atol=1e-6)
    assert not np.allclose(agent.magnet_policy, 0.1)  # the magnet moved


@pytest.mark.parametrize("cls", [NashMD, EGPO])
def test_regularized_methods_reach_regularized_nash_and_plateau(cls):
    game = random_skew_symmetric(10, seed=0)
    agent = cls(game, learning_rate=0.5, tau=0.1).learn(3000)
    target = regularized_nash(game, np.ones(10) / 10, 0.1)
    assert agent.regularized_gap() < 1e-3
    assert np.abs(agent.policy - target).max() < 1e-2
    gaps = agent.history["last_gap"]
    assert gaps[-1] > 0.05 and abs(gaps[-1] - gaps[-500]) < 1e-3  # plateau set by tau


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_spo_minimiser_is_softmax_r_over_alpha(alpha, gamma):
    """003 Theorems 1-2 on Bradley-Terry data, beta = 0."""
    game = transitive(6, seed=0)
    r = game.preference_model.rewards
    agent = SPO(game, learning_rate=5.0, alpha=alpha, gamma=gamma).learn(5000)
    assert np.abs(agent.policy - softmax(r / alpha)).max() < 1e-8
    losses = []
    agent2 = SPO(game, learning_rate=1.0, alpha=alpha, gamma=gamma)
    for _ in range(50):
        losses.append(float(agent2.loss()))
        agent2.learn(1)
    if gamma == 0:  # plain gradient descent on a fixed loss decreases it
        assert np.all(np.diff(losses) < 0)


def test_spo_alpha_zero_goes_to_argmax():
    game = transitive(5, seed=2)
    agent = SPO(game, learning_rate=5.0, alpha=0.0).learn(4000)
    assert agent.policy.argmax() == np.argmax(game.preference_model.rewards)
    assert agent.policy.max() > 0.99


def test_batched_run_matches_per_game_runs():
    games = random_skew_symmetric(6, seed=5, batch=8)
    for cls, kw in [(OMWU, {"learning_rate": 0.5}), (MPO, {}), (EGPO, {"tau": 0.05}),
                    (ONPO, {"inner_steps": 3}), (SPO, {})]:
        batched = cls(games, **kw).learn(200)
        for i in (0, 7):
            single = cls(games[i], **kw).learn(200)
            assert np.allclose(batched.policy[i], single.policy, atol=1e-12), cls.__name__
            assert np.allclose(batched.history["last_gap"][:, i], single.history["last_gap"])


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_save_load_continues_to_identical_next_iterate(tmp_path, name):
    cls = AGENTS[name]
    game = random_skew_symmetric(5, seed=1)
    kw = {"magnet_refresh_every": 7} if name == "mmd" else {}
    agent = cls(game, seed=3, **kw).learn(23)
    path = agent.save(tmp_path / "agent")
    restored = BaseAgent.load(path)
    assert type(restored) is cls and restored.num_iterations == 23
    agent.learn(10)
    restored.learn(10)
    assert np.array_equal(agent.policy, restored.policy)
    assert np.array_equal(agent.history["last_gap"], restored.history["last_gap"])
    assert np.array_equal(agent.average_policy, restored.average_policy)
    assert agent.predict(None)[0] == restored.predict(None)[0]  # rng state restored too


def test_load_checks_class_and_game(tmp_path):
    path = OMWU(rps()).save(tmp_path / "omwu.zip")
    with pytest.raises(ValueError, match="holds a OMWU agent"):
        MWU.load(path)
    with pytest.raises(ValueError, match="shape"):
        OMWU.load(path, env=random_skew_symmetric(4, seed=0))
    assert OMWU.load(path, env=rps()).game.n_actions == 3


def test_callbacks_stop_training():
    game = rps()
    agent = OMWU(game, learning_rate=0.5, init_policy=BIASED)
    agent.learn(10_000, callback=StopTrainingOnGap(1e-6))
    assert agent.num_iterations < 10_000 and agent.history["last_gap"][-1] <= 1e-6
    assert len(agent.history["last_gap"]) == agent.num_iterations
    calls = []
    agent2 = MWU(game).learn(100, callback=lambda loc, glob: calls.append(1) or len(calls) < 5)
    assert agent2.num_iterations == 5
    with pytest.raises(ValueError, match="which"):
        StopTrainingOnGap(0.1, which="best")


def test_progress_bar_runs(capsys):
    OMWU(rps()).learn(50, progress_bar=True)
    assert "OMWU" in capsys.readouterr().err


def test_predict_samples_from_the_last_iterate():
    agent = MWU(rps(), init_policy=BIASED, seed=0)
    acts, _ = agent.predict(np.zeros(20_000))
    freq = np.bincount(acts, minlength=3) / 20_000
    assert np.allclose(freq, BIASED, atol=0.02)
    assert agent.predict(0, deterministic=True)[0] == 0
    batched = MWU(random_skew_symmetric(4, seed=0, batch=3), seed=0)
    assert batched.predict(None)[0].shape == (3,)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="learning_rate"):
        OMWU(rps(), learning_rate=0)
    with pytest.raises(ValueError, match="init_policy must have last dimension 3"):
        OMWU(rps(), init_policy=[0.5, 0.5])
    with pytest.raises(ValueError, match="full support"):
        OMWU(rps(), init_policy=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="alpha"):
        MMD(rps(), alpha=-1)
    with pytest.raises(ValueError, match="unknown agent"):
        get_agent_class("dqn")
    with pytest.raises(TypeError, match="expected a MatrixGame"):
        OMWU(object())
    assert get_agent_class("Nash-MD") is NashMD
