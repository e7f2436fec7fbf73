"""The specs and their adapters: one step, the same numbers in every family that can run it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from prefgym.agents import AGENTS, make_agent
from prefgym.agents.markov import MarkovAgent
from prefgym.agents.registry import agent_class, family_of
from prefgym.agents.tabular import TabularAgent
from prefgym.algorithms import SPECS, AlgorithmSpec, HParam, get_spec
from prefgym.algorithms.rules import log_normalize
from prefgym.errors import InvalidArgumentError
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.matrix import MatrixGame, planted_nash

GENERIC = {fam: sorted(s.name for s in SPECS.values() if s.is_generic(fam))
           for fam in ("tabular", "markov", "llm")}
BOTH = sorted(set(GENERIC["tabular"]) & set(GENERIC["markov"]))


def _game(n=4, seed=3) -> MatrixGame:
    return planted_nash(n, rank=1, seed=seed)


def test_registry_is_built_from_the_specs():
    assert {s.name for s in SPECS.values()} == set(SPECS)
    assert len(GENERIC["tabular"]) >= 5 and len(GENERIC["markov"]) >= 4 and len(GENERIC["llm"]) >= 2
    for spec in SPECS.values():
        for fam in ("tabular", "markov"):
            if fam in spec.families:
                cls = agent_class(spec.name, fam)
                assert AGENTS[cls.name] is cls
                assert issubclass(cls, TabularAgent if fam == "tabular" else MarkovAgent)
    assert get_spec("Nash-MD") is SPECS["nash_md"] and get_spec("omwu-llm") is SPECS["omwu"]
    assert get_spec("magnetic_mpo") is SPECS["mpo"] and get_spec("mpo_001") is SPECS["mpo_ac"]
    with pytest.raises(InvalidArgumentError, match="unknown algorithm"):
        get_spec("nope")


def test_make_agent_picks_the_family_from_the_game():
    g = _game()
    assert type(make_agent("mpo", g)).__name__ == "MPO"
    assert type(make_agent("mpo", TabularMarkovGame.from_matrix_game(g))).__name__ == "MagneticMPO"
    assert type(make_agent("mpo", "prefgym/Gridworld-v0")).__name__ == "MagneticMPO"
    assert type(make_agent("ompo", g)).__name__ == "OMPO"  # Markov only: a matrix game is H = 1
    assert family_of(g) == "tabular"
    with pytest.raises(InvalidArgumentError, match="does not run on"):
        make_agent("dpo", g)


@pytest.mark.parametrize("name", GENERIC["tabular"])
def test_spec_step_is_array_code_for_numpy_and_torch(name):
    torch = pytest.importorskip("torch")
    spec = SPECS[name]
    g = _game(5, seed=1)
    rng = np.random.default_rng(0)
    logits, ref, mag, prev = (log_normalize(rng.normal(size=5))[0] for _ in range(4))

    class Inputs:
        def __init__(self, xp):
            conv = (lambda a: a) if xp == "np" else (lambda a: torch.tensor(a))
            self.conv, self.logits, self.lr = conv, conv(logits), 0.3
            self.reference, self.magnet = conv(ref), conv(mag)

        def payoff(self, opponent="current"):
            opp = {"current": logits, "previous": prev, "magnet": mag}.get(opponent, None) \
                if isinstance(opponent, str) else np.asarray(opponent)
            return self.conv(g.payoff @ log_normalize(opp)[1])

    hp = spec.check_hparams({}, 0.3, "tabular")
    a, b = spec.step(Inputs("np"), hp), spec.step(Inputs("torch"), hp)
    assert isinstance(b, torch.Tensor)
    np.testing.assert_allclose(b.numpy(), a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", GENERIC["tabular"])
def test_generic_tabular_agents_learn_and_round_trip(name, tmp_path):
    g = _game()
    agent = make_agent(name, g, seed=0).learn(200, progress_bar=False)
    assert agent.history["last_gap"].shape == (200,) and np.isfinite(agent.history["last_gap"]).all()
    assert agent.current_gap("average") < agent.history["average_gap"][0]  # it moved towards the NE
    agent.save(tmp_path / "a.zip")
    back = type(agent).load(tmp_path / "a.zip")
    np.testing.assert_array_equal(back.policy, agent.policy)
    agent.learn(5, progress_bar=False)
    back.learn(5, progress_bar=False)
    np.testing.assert_array_equal(back.policy, agent.policy)  # the rule's state (previous, magnet) was saved


@pytest.mark.parametrize("name", BOTH)
def test_markov_adapter_at_one_state_is_the_tabular_adapter(name):
    # H = 1, one state: the hard Q is the payoff A pi, so both families take the same steps
    g = _game(4, seed=5)
    kwargs = {"learning_rate": 0.2, **SPECS[name].defaults("tabular")}  # the same hyper-parameters
    if "previous_at_start" in kwargs:
        kwargs["previous_at_start"] = "current"
    tab = agent_class(name, "tabular")(g, **kwargs).learn(30, progress_bar=False)
    one_state = TabularMarkovGame.from_matrix_game(g)
    mk = agent_class(name, "markov")(one_state, **kwargs).learn(30, progress_bar=False)
    np.testing.assert_allclose(mk.policy.reshape(-1), tab.policy, atol=1e-12)


def test_spec_checks_its_hyperparameters():
    with pytest.raises(InvalidArgumentError, match="learning_rate \\* tau"):
        make_agent("nash_md", _game(), learning_rate=2.0, tau=1.0)
    with pytest.raises(InvalidArgumentError, match="unknown hyper-parameters"):
        make_agent("omwu", _game(), bogus=1)
    with pytest.raises(ValueError, match="no step"):
        AlgorithmSpec(name="x", title="x", paper="x")
    with pytest.raises(ValueError, match="magnet_refresh"):
        AlgorithmSpec(name="x", title="x", paper="x", step=lambda x, hp: x.logits, magnet_refresh="k",
                      hparams=(HParam("a", 1, "a"),))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", GENERIC["llm"])
def test_generic_llm_algorithms_follow_their_tabular_step_on_a_menu(name, tiny):
    pytest.importorskip("transformers")
    from prefgym.agents.llm import MenuPolicy
    from prefgym.agents.llm.registry import LLM_AGENTS
    from prefgym.judges import TableJudge
    from prefgym.llm.policy import LMPolicy

    replies, prompts = ["goodbye!", "hello there.", "I am fine."], ["User: hi\nAssistant:"]
    game = planted_nash(3, rank=1, seed=2)
    model, tok = tiny
    menu = MenuPolicy(LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model)), replies)
    judge = TableJudge.from_preference(game.preference, replies)
    eta = 0.5
    trainer = make_agent(name, menu, judge=judge, prompts=prompts, eta=eta, learning_rate=1e-2,
                         steps_per_iteration=4, step_kl_tol=1e-9, max_steps_per_iteration=400, seed=0)
    assert type(trainer) is LLM_AGENTS[name]  # the family follows from the policy
    pi0 = menu.probs(prompts)[0]
    trainer.learn(2)
    # the same spec on the tabular side from the LM's start (reference = magnet = pi_0)
    kw = SPECS[name].defaults("llm")  # the trainer's hyper-parameters (tau = 0.1, ...)
    tab = agent_class(name, "tabular")(game, learning_rate=eta, init_policy=pi0, **kw)
    tab.learn(2, progress_bar=False)
    assert np.abs(menu.probs(prompts)[0] - tab.policy).max() < 2e-4  # measured: at most 3e-5
    # not vacuous: both moved away from pi_0, and another tau gives another trajectory
    assert np.abs(tab.policy - pi0).max() > 2e-2
    if "tau" in kw:
        other = agent_class(name, "tabular")(game, learning_rate=eta, init_policy=pi0, **{**kw, "tau": 2.0})
        assert np.abs(other.learn(2, progress_bar=False).policy - tab.policy).max() > 2e-3


def test_config_dataclasses_build_the_same_agent_and_are_frozen():
    from dataclasses import FrozenInstanceError, asdict

    spec = get_spec("nash_md")
    cfg = spec.config_class("tabular")(learning_rate=0.2, tau=0.05)
    assert asdict(cfg) == {"learning_rate": 0.2, "tau": 0.05, "mixture": None}
    assert spec.config_class("llm")().eta == 1.0 and spec.config_class("llm")().tau == 0.1  # LLM defaults
    g = _game()
    a = make_agent("nash_md", g, config=cfg).learn(20, progress_bar=False)
    b = make_agent("nash_md", g, learning_rate=0.2, tau=0.05).learn(20, progress_bar=False)
    np.testing.assert_array_equal(a.policy, b.policy)
    assert a.config == cfg
    with pytest.raises(FrozenInstanceError):
        cfg.tau = 1.0
    with pytest.raises(InvalidArgumentError, match="config must be a NashMDConfig"):
        make_agent("nash_md", g, config=get_spec("omwu").config_class("tabular")())


def test_cli_run_records_its_full_config_and_reruns_from_it(tmp_path):
    import json

    from prefgym.cli import main

    assert main(["train", "--agent", "mpo", "--env", "prefgym/Gridworld-v0", "--iterations", "5",
                 "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["agent"] == "mpo_markov" and cfg["agent_class"] == "MagneticMPO"  # family from the game
    assert cfg["agent_config"]["magnet_refresh_every"] == 100 and cfg["agent_config"]["alpha"] == 0.1
    rerun = ["train", "--config", str(tmp_path / "a"), "--out", str(tmp_path / "b"), "--no-progress"]
    assert main(rerun) == 0
    rows = [(tmp_path / r / "metrics.csv").read_text() for r in ("a", "b")]
    assert rows[0] == rows[1]


def test_aihf_is_the_control_family_of_the_registry():
    pytest.importorskip("stable_baselines3")
    import gymnasium as gym

    from prefgym.agents import get_agent_class
    from prefgym.agents.aihf import AIHF

    env = gym.make("prefgym/PendulumPreference-v0")  # classic control: no MuJoCo needed
    assert family_of(env) == "control" and family_of("prefgym/RPS-v0") == "tabular"
    assert agent_class("aihf", "control") is AIHF
    assert isinstance(make_agent("aihf", env, seed=0), AIHF)
    with pytest.raises(ValueError, match="--algo aihf"):
        get_agent_class("aihf")
    with pytest.raises(ValueError, match="generic adapter"):
        AlgorithmSpec(name="x", title="x", paper="x", step=lambda x, hp: x.logits, families=("control",))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_llm_adapter_loss_is_the_former_omwu_loss_up_to_rounding(dtype):
    # before the specs, neural OMWU regressed log pi/pi_t on eta (2 P_t - P_{t-1}); the adapter regresses
    # log pi on the step's log-policy log pi_t + eta (2 g_t - g_{t-1}), g = P - 1/2: the same loss
    torch = pytest.importorskip("torch")
    from prefgym.agents.llm.losses import generalized_ipo_loss
    from prefgym.algorithms.spec import FixedInputs

    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    worst_loss = worst_grad = 0.0
    for _ in range(50):
        old = torch.log_softmax(torch.randn(4, 3, generator=gen, dtype=dt), -1)
        logp = (old + 0.01 * torch.randn(4, 3, generator=gen, dtype=dt)).requires_grad_()
        P, P_prev = torch.rand(4, 3, generator=gen, dtype=dt), torch.rand(4, 3, generator=gen, dtype=dt)
        before = generalized_ipo_loss(logp, 4.0 * (2 * P - P_prev), base_logp=old).loss
        payoffs = {"current": P - 0.5, "previous": P_prev - 0.5}
        target = SPECS["omwu"].step(FixedInputs(old, 4.0, payoffs), None)
        after = generalized_ipo_loss(logp, target, base_logp=torch.zeros_like(target)).loss
        (g_before,), (g_after,) = torch.autograd.grad(before, logp), torch.autograd.grad(after, logp)
        worst_loss = max(worst_loss, float(((before - after).abs() / before.abs()).detach()))
        worst_grad = max(worst_grad, float((g_before - g_after).abs().max() / g_before.abs().max()))
    tol = 1e-6 if dtype == "float32" else 1e-13
    assert worst_loss < tol and worst_grad < tol
