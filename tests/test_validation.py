"""Every bad input gets a clear error: the shared checks and each bad-input finding of the audit.

Each test below fed the old code an input it accepted silently, or answered with an
error from NumPy / the standard library; now the input raises one of
:mod:`prefgym.errors`' types whose message names the argument and what is allowed.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import prefgym.envs  # noqa: F401  (registers the ids)
from prefgym import validation as V
from prefgym.agents import MPO, OMWU
from prefgym.agents.markov import OMPO
from prefgym.cli import main as cli_main
from prefgym.data.control import PreferencePairs
from prefgym.errors import (
    DatasetError,
    InvalidActionError,
    InvalidArgumentError,
    InvalidGameError,
    InvalidPolicyError,
    InvalidTypeError,
    PrefgymError,
    SolverLimitError,
)
from prefgym.games import MatrixGame, TabularMarkovGame, planted_nash, random_skew_symmetric, rps
from prefgym.judges.base import JudgeOutputError, PairwiseJudge
from prefgym.preferences import BradleyTerry, TabularPreference

BAD_SEEDS = [(-1, InvalidArgumentError), ("abc", InvalidTypeError), (1.5, InvalidTypeError),
             (True, InvalidTypeError), (2**200, InvalidArgumentError)]


# ------------------------------------------------------------------ shared checks
@pytest.mark.parametrize(("seed", "error"), BAD_SEEDS)
def test_check_seed_refuses_what_numpy_would_choke_on(seed, error):
    with pytest.raises(error, match="seed must be a non-negative integer"):
        V.check_seed(seed)


def test_check_seed_accepts_ints_and_none():
    assert V.check_seed(None) is None
    assert V.check_seed(0) == 0 and V.check_seed(np.int64(7)) == 7
    assert isinstance(V.check_rng(3), np.random.Generator)


@pytest.mark.parametrize(("value", "error", "match"), [
    ("0.1", InvalidTypeError, r"learning_rate must be a positive number; got '0.1' \(str\)"),
    (0.0, InvalidArgumentError, r"learning_rate must be a positive number \(finite, > 0\); got 0.0"),
    (-1, InvalidArgumentError, r"> 0\); got -1"),
    (np.nan, InvalidArgumentError, "got nan"),
    (np.inf, InvalidArgumentError, "got inf"),
    (True, InvalidTypeError, "bool"),
    (None, InvalidTypeError, "NoneType"),
])
def test_check_positive_float(value, error, match):
    with pytest.raises(error, match=match):
        V.check_positive_float(value, "learning_rate")


def test_ints_too_large_for_a_float_are_refused_clearly():
    with pytest.raises(InvalidArgumentError, match="learning_rate = .* is too large for a float"):
        V.check_positive_float(10**400, "learning_rate")
    with pytest.raises(InvalidArgumentError, match="too large"):
        OMWU(rps(), learning_rate=10**400)
    assert V.check_int(10**400, "n") == 10**400  # an int stays an int


def test_check_int_and_float_bounds():
    assert V.check_int(3.0, "n") == 3
    with pytest.raises(InvalidArgumentError, match="n must be an integer; got 2.5"):
        V.check_int(2.5, "n")
    with pytest.raises(InvalidArgumentError, match=r"n must be an integer >= 1; got 0"):
        V.check_positive_int(0, "n")
    with pytest.raises(InvalidTypeError, match="n must be an integer"):
        V.check_int("3", "n")
    with pytest.raises(InvalidArgumentError, match=r"gamma must be a finite number in \(0, 1\]; got 0"):
        V.check_float(0.0, "gamma", low=0.0, high=1.0, low_open=True)
    with pytest.raises(InvalidArgumentError, match="form must be one of"):
        V.check_choice("x", "form", ("a", "b"))


@pytest.mark.parametrize(("pi", "match"), [
    ([2.0, 0.0, 0.0], "must sum to 1 .* sums to 2"),
    ([np.nan, 0.5, 0.5], r"NaN at entry \(0,\)"),
    ([np.inf, 0.0, 0.0], "inf at entry"),
    ([0.5, 0.7, -0.2], "negative probability -0.2"),
    ([0.5, 0.5], "last dimension 3"),
    (0.5, "last dimension 3"),
])
def test_check_probability_vector(pi, match):
    with pytest.raises(InvalidPolicyError, match=match):
        V.check_probability_vector(pi, 3)


def test_check_probability_vector_types_and_batches():
    with pytest.raises(InvalidTypeError, match="complex"):
        V.check_probability_vector(np.ones(3, complex) / 3, 3)
    with pytest.raises(InvalidTypeError, match="real numbers"):
        V.check_probability_vector(["a", "b", "c"], 3)
    with pytest.raises(InvalidPolicyError, match="rectangular"):
        V.check_probability_vector([[0.5, 0.5], [1.0]], 2)
    batch = np.array([[1.0, 0.0], [0.25, 0.75]])
    np.testing.assert_array_equal(V.check_probability_vector(batch, 2), batch)
    with pytest.raises(InvalidPolicyError, match=r"batch index \(1,\)"):
        V.check_probability_vector([[1.0, 0.0], [0.5, 0.6]], 2)


# ------------------------------------------------------------------ findings: matrix games
def test_win_rate_refuses_a_vector_that_is_not_a_policy():
    game = rps()
    with pytest.raises(InvalidPolicyError, match="pi must sum to 1"):
        game.win_rate([2, 0, 0], np.ones(3) / 3)  # returned 1.5 before
    with pytest.raises(InvalidPolicyError, match="rho"):
        game.win_rate(np.ones(3) / 3, [0.0, 0.0, 0.0])
    assert float(game.win_rate([1, 0, 0], [0, 1, 0])) == 1.0  # rock beats scissors


def test_payoff_vector_refuses_nan_policies():
    game = rps()
    with pytest.raises(InvalidPolicyError, match="NaN"):
        game.payoff_vector([np.nan, 0.5, 0.5])
    with pytest.raises(InvalidPolicyError):
        game.exploitability([np.nan, 0.5, 0.5])
    with pytest.raises(InvalidPolicyError):
        game.duality_gap([0.2, 0.2, 0.2])
    with pytest.raises(InvalidArgumentError, match="tau"):
        game.regularized_duality_gap(np.ones(3) / 3, tau=-1.0)
    np.testing.assert_allclose(game.payoff_vector([1.0, 0.0, 0.0]), [0.0, -0.5, 0.5])


def test_batched_policies_must_broadcast_against_the_batch():
    games = random_skew_symmetric(3, seed=0, batch=4)
    with pytest.raises(InvalidArgumentError, match="does not broadcast"):
        games.payoff_vector(np.ones((3, 3)) / 3)
    assert games.payoff_vector(np.ones(3) / 3).shape == (4, 3)


def test_complex_preference_matrix_is_an_error_not_a_warning():
    P = np.array([[0.5, 0.8 + 0.1j], [0.2, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old code only warned (ComplexWarning)
        with pytest.raises(InvalidTypeError, match="complex"):
            MatrixGame(P)
        with pytest.raises(InvalidTypeError, match="complex"):
            TabularPreference(P)


@pytest.mark.parametrize(("matrix", "error", "match"), [
    ([[0.5, np.inf], [0.0, 0.5]], InvalidGameError, r"inf at entry P\[0, 1\]"),
    ("abc", InvalidTypeError, "preference"),
    (None, InvalidTypeError, "preference"),
    ([[0.5, 0.5], [0.5]], InvalidGameError, "rectangular"),
    (np.zeros((0, 0)), InvalidGameError, "at least one item"),
])
def test_bad_preference_matrices(matrix, error, match):
    with pytest.raises(error, match=match):
        MatrixGame(matrix)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: random_skew_symmetric(-2), InvalidArgumentError, "n must be an integer >= 1"),
    (lambda: random_skew_symmetric(3, seed=-1), InvalidArgumentError, "seed"),
    (lambda: random_skew_symmetric(3, seed="abc"), InvalidTypeError, "seed"),
    (lambda: random_skew_symmetric(3, seed=1.5), InvalidTypeError, "seed"),
    (lambda: random_skew_symmetric(3, batch=0), InvalidArgumentError, "batch"),
    (lambda: planted_nash(4, rank=4), InvalidArgumentError, "rank"),
    (lambda: BradleyTerry([0.0, np.nan]), InvalidGameError, "rewards has NaN"),
    (lambda: BradleyTerry([0.0, 1.0], temperature="1"), InvalidTypeError, "temperature"),
])
def test_generators_and_models_validate(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_nash_equilibrium_time_limit_says_how_big_is_too_big():
    game = planted_nash(1200, seed=0)
    start = time.perf_counter()
    with pytest.raises(SolverLimitError, match=r"time_limit=0.2 s on a game with n = 1200 actions.*n = 800"):
        game.nash_equilibrium(time_limit=0.2)
    assert time.perf_counter() - start < 10  # the old solver ran for minutes at n = 2000
    with pytest.raises(InvalidArgumentError, match="time_limit"):
        rps().nash_equilibrium(time_limit=0)
    np.testing.assert_allclose(rps().nash_equilibrium(time_limit=None), np.ones(3) / 3, atol=1e-8)


# ------------------------------------------------------------------ findings: Markov games
def test_markov_game_constructor_refuses_nan_and_bad_horizon():
    f = np.ones((1, 2, 1))
    r = np.full((1, 2, 1, 2), 0.5)
    with pytest.raises(InvalidGameError, match="transitions has NaN"):
        TabularMarkovGame(np.full((1, 2, 1), np.nan), r, [1.0], horizon=1)
    with pytest.raises(InvalidArgumentError, match="horizon must be an integer >= 1"):
        TabularMarkovGame(f, r, [1.0], horizon=0)
    with pytest.raises(InvalidTypeError, match="horizon"):
        TabularMarkovGame(f, r, [1.0], horizon="2")
    game = TabularMarkovGame(f, r, [1.0], horizon=1)
    with pytest.raises(InvalidPolicyError, match="inf"):
        game.exploitability(np.array([[[np.inf, 0.0]]]))


# ------------------------------------------------------------------ findings: agents
@pytest.mark.parametrize("agent_cls", [OMWU, MPO, OMPO])
def test_agents_name_a_string_learning_rate(agent_cls):
    with pytest.raises(InvalidTypeError, match=r"learning_rate must be a positive number; got '0.1'"):
        agent_cls(rps(), learning_rate="0.1")


@pytest.mark.parametrize(("seed", "error"), BAD_SEEDS[:4])
@pytest.mark.parametrize("agent_cls", [OMWU, OMPO])
def test_agents_refuse_bad_seeds_with_a_prefgym_error(agent_cls, seed, error):
    with pytest.raises(error, match="seed"):
        agent_cls(rps(), seed=seed)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"alpha": "big"}, "alpha"), ({"magnet_refresh_every": 0}, "magnet_refresh_every"),
    ({"magnet_refresh_every": 2.5}, "magnet_refresh_every"), ({"inner_lr": -1.0}, "inner_lr"),
    ({"verbose": -1}, "verbose"), ({"magnet": [0.5, 0.5]}, "magnet"),
])
def test_mpo_hyper_parameters(kwargs, match):
    with pytest.raises(PrefgymError, match=match):
        MPO(rps(), **kwargs)


# ------------------------------------------------------------------ findings: envs
def test_matrix_env_refuses_steps_after_the_end():
    env = gymnasium.make("prefgym/MatrixGame-v0")
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(0)
    assert terminated
    with pytest.raises(InvalidActionError, match="episode is over.*call reset"):
        env.step(0)  # kept stepping before
    env.reset(seed=1)
    env.step(1)  # a reset starts a new episode


@pytest.mark.parametrize("env_id", ["prefgym/MatrixGame-v0", "prefgym/Gridworld-v0"])
def test_envs_refuse_bad_seeds(env_id):
    env = gymnasium.make(env_id)
    for seed, error in BAD_SEEDS[:3]:
        with pytest.raises(error, match="seed"):
            env.reset(seed=seed)


def test_discrete_actions_refuse_nan_and_floats():
    env = gymnasium.make("prefgym/MatrixGame-v0").unwrapped
    env.reset(seed=0)
    for bad in (np.nan, 1.0, np.array([0.0]), None, "0", [0, 1]):
        with pytest.raises(InvalidActionError, match="invalid action"):
            env.step(bad)


def test_box_action_check():
    space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    np.testing.assert_array_equal(V.check_box_action(np.array([1.0, -1.0], np.float32), space), [1, -1])
    cases = [([np.nan, 0.0], "nan at index"), ([np.inf, 0.0], "inf at index"),
             ([2.0, 0.0], r"action\[0\] = 2 lies outside"), ([0.0], "shape"), ("ab", "shape|invalid")]
    for bad, match in cases:
        with pytest.raises(InvalidActionError, match=match):
            V.check_box_action(bad, space)


@pytest.mark.parametrize("bad", [[np.nan], [np.inf], [-np.inf], [5.0], [0.0, 0.0]])
def test_mujoco_preference_env_refuses_nan_inf_and_out_of_range_actions(bad):
    env = gymnasium.make("prefgym/PendulumPreference-v0", segment_length=4, horizon=8).unwrapped
    env.reset(seed=0)
    t0 = env._duel.t
    with pytest.raises(InvalidActionError, match="action"):
        env.step(np.array(bad, np.float32))  # MuJoCo only warned, reset and paid 0 before
    assert env._duel.t == t0  # nothing was stepped
    env.step(np.array([0.5], np.float32))


def test_mujoco_preference_env_refuses_steps_after_the_end():
    env = gymnasium.make("prefgym/PendulumPreference-v0", segment_length=2, horizon=2).unwrapped
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(np.zeros(1, np.float32))
        done = term or trunc
    with pytest.raises(InvalidActionError, match="episode is over"):
        env.step(np.zeros(1, np.float32))


# ------------------------------------------------------------------ findings: data
def _pairs(**over):
    rng = np.random.default_rng(0)
    n, L = 3, 4
    arrays = dict(obs_a=rng.normal(size=(n, L, 2)), act_a=rng.normal(size=(n, L, 1)),
                  mask_a=np.ones((n, L), bool), obs_b=rng.normal(size=(n, L, 2)),
                  act_b=rng.normal(size=(n, L, 1)), mask_b=np.ones((n, L), bool),
                  labels=np.array([1.0, 0.0, 0.5]), returns_a=np.zeros(n), returns_b=np.zeros(n))
    arrays.update(over)
    return PreferencePairs(**arrays)


def test_preference_pairs_refuse_segments_of_different_lengths():
    rng = np.random.default_rng(1)
    with pytest.raises(DatasetError, match="same length"):
        _pairs(obs_b=rng.normal(size=(3, 5, 2)), act_b=rng.normal(size=(3, 5, 1)),
               mask_b=np.ones((3, 5), bool))
    with pytest.raises(DatasetError, match=r"disagree on \(n, L\)"):
        _pairs(act_a=np.zeros((3, 5, 1)))


def test_preference_pairs_refuse_nan_observations():
    with pytest.raises(DatasetError, match=r"obs_a\[0, 0, 0\] = nan at a valid step"):
        _pairs(obs_a=np.full((3, 4, 2), np.nan))
    mask = np.ones((3, 4), bool)
    mask[:, -1] = False
    obs = np.random.default_rng(0).normal(size=(3, 4, 2))
    obs[:, -1] = np.nan  # NaN only on padding is fine
    assert len(_pairs(obs_a=obs, mask_a=mask)) == 3
    with pytest.raises(DatasetError, match="no valid step"):
        _pairs(mask_b=np.zeros((3, 4), bool))
    with pytest.raises(DatasetError, match="labels must lie in"):
        _pairs(labels=np.array([1.0, 2.0, 0.5]))
    with pytest.raises(InvalidTypeError, match="real"):
        _pairs(obs_a=np.full((3, 4, 2), "x"))


@pytest.mark.parametrize("argv", [
    ["data", "expert", "--env", "Pendulum-v1", "--timesteps", "0"],
    ["data", "expert", "--env", "Pendulum-v1", "--timesteps", "-5"],
    ["data", "expert", "--env", "Pendulum-v1", "--timesteps", "100", "--checkpoints", "0"],
    ["data", "demos", "--env", "Pendulum-v1", "--policy", "x.zip", "--steps", "0"],
    ["data", "rollouts", "--env", "Pendulum-v1", "--expert", "x", "--steps-per-checkpoint", "0"],
    ["data", "preferences", "--env", "Pendulum-v1", "--pairs", "0"],
    ["data", "preferences", "--env", "Pendulum-v1", "--seed", "-1"],
])
def test_data_cli_refuses_non_positive_counts_and_writes_nothing(argv, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main([*argv, "--out", str(out)] if argv[1] in ("expert", "preferences") else argv)
    assert code == 2
    err = capsys.readouterr().err
    assert "must be an integer >=" in err and "Traceback" not in err and "KeyError" not in err
    assert not out.exists()


def test_train_expert_refuses_zero_timesteps(tmp_path):
    from prefgym.data.control import train_expert

    with pytest.raises(InvalidArgumentError, match="total_timesteps must be an integer >= 1; got 0"):
        train_expert("Pendulum-v1", 0, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_corrupted_minari_dataset_is_reported_as_corrupted(tmp_path):
    pytest.importorskip("minari")
    from prefgym.data.control import collect_episodes, load_episodes, scripted_policy, write_dataset

    episodes = collect_episodes("Pendulum-v1", scripted_policy("Pendulum-v1"), n_episodes=1,
                                env_kwargs={"max_episode_steps": 5})
    write_dataset("prefgym/t/corrupt-v0", episodes, "Pendulum-v1", root=tmp_path)
    assert len(load_episodes("prefgym/t/corrupt-v0", root=tmp_path)) == 1
    data = tmp_path / "prefgym" / "t" / "corrupt-v0" / "data"
    for f in data.iterdir():
        if f.is_file():
            f.write_bytes(b"\x00garbage")
    with pytest.raises(DatasetError, match="exists .* but cannot be read: it is corrupted"):
        load_episodes("prefgym/t/corrupt-v0", root=tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_episodes("prefgym/t/absent-v0", root=tmp_path)


# ------------------------------------------------------------------ findings: judges and the LLM trainer
class _StringJudge(PairwiseJudge):
    def _prob(self, contexts, responses_a, responses_b):
        return ["yes"] * len(responses_a)


class _NumericStringJudge(PairwiseJudge):
    def _prob(self, contexts, responses_a, responses_b):
        return ["0.5"] * len(responses_a)  # NumPy would silently parse these


@pytest.mark.parametrize("judge", [_StringJudge(), _NumericStringJudge()])
def test_a_judge_that_returns_strings_is_named(judge):
    with pytest.raises(JudgeOutputError, match=f"{type(judge).__name__} returned values of dtype <U"):
        judge.prob("c", ["a"], ["b"])


@pytest.fixture
def tiny_menu(tiny):
    pytest.importorskip("transformers")
    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    return MenuPolicy(LMPolicy(model, tok, max_new_tokens=4), ["yes", "no", "maybe"])


def _judge():
    from prefgym.judges.synthetic import TableJudge

    return TableJudge({"yes": 1.0, "no": 0.0, "maybe": 0.5})


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"learning_rate": "0.1"}, InvalidTypeError, r"learning_rate must be a positive number; got '0.1'"),
    ({"learning_rate": -1e-3}, InvalidArgumentError, "learning_rate"),
    ({"prompts": None}, InvalidTypeError, "prompts must be a non-empty sequence of strings; got NoneType"),
    ({"prompts": []}, InvalidArgumentError, "prompts must be a non-empty"),
    ({"prompts": ["a", 3]}, InvalidTypeError, r"prompts\[1\] must be a string"),
    ({"judge": lambda c, a, b: 0.5}, InvalidTypeError, "judge must be a prefgym.judges.PairwiseJudge"),
    ({"seed": -1}, InvalidArgumentError, "seed"),
    ({"steps_per_iteration": 0}, InvalidArgumentError, "steps_per_iteration"),
    ({"adam_betas": (0.9, 1.5)}, InvalidArgumentError, r"adam_betas\[1\]"),
])
def test_llm_trainer_arguments(tiny_menu, kwargs, error, match):
    from prefgym.agents.llm.trainer import SelfPlayTrainer

    args = {"policy": tiny_menu, "judge": _judge(), "prompts": ["q"], "algorithm": "omwu", **kwargs}
    with pytest.raises(error, match=match):
        SelfPlayTrainer(**args)


def test_llm_trainer_with_a_string_judge_fails_clearly(tiny_menu):
    from prefgym.agents.llm.trainer import SelfPlayTrainer

    trainer = SelfPlayTrainer(tiny_menu, _StringJudge(), ["q"], "omwu")
    with pytest.raises(JudgeOutputError, match="_StringJudge returned values of dtype"):
        trainer.learn(1)


def test_every_error_type_is_a_prefgym_error():
    for err in (InvalidActionError, InvalidArgumentError, InvalidGameError, InvalidPolicyError,
                InvalidTypeError, DatasetError, SolverLimitError, JudgeOutputError):
        assert issubclass(err, PrefgymError)
    assert Path(V.__file__).name == "validation.py"
