"""Property-based tests of the envs' ``reset``/``step`` and the data loaders.

Like :mod:`test_properties`: every generated action, seed or data set either works
(and the result is right: observations in the space, finite rewards, exact
round-trips) or raises one of prefgym's own errors; the outcomes are counted by
:mod:`outcomes`.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from outcomes import attempt
from test_properties import arrays, few, scalars, seeds

import prefgym.envs  # noqa: F401  (registers the ids)
from prefgym.data.control import PreferencePairs
from prefgym.errors import InvalidActionError

actions_discrete = st.one_of(
    st.integers(-3, 8), st.floats(allow_nan=True, allow_infinity=True), scalars,
    st.sampled_from([np.int64(1), np.array(2), np.array([0]), np.array([0, 1]), np.float32(1.0)]),
)


def _step_ok(env):
    def check(out):
        obs, reward, terminated, truncated, info = out
        assert env.observation_space.contains(obs), f"observation {obs!r} outside {env.observation_space}"
        assert np.isfinite(reward), f"reward {reward}"
        assert isinstance(terminated, bool | np.bool_) and isinstance(truncated, bool | np.bool_)
    return check


def _episode(env_id: str, kwargs: dict, seed, actions, target: str):
    env = gymnasium.make(env_id, disable_env_checker=True, **kwargs).unwrapped
    if attempt(f"{target}.reset", lambda: env.reset(seed=seed), describe=f"seed={seed!r}") is None:
        return
    done = False
    for a in actions:
        out = attempt(f"{target}.step", lambda a=a: env.step(a), _step_ok(env), f"action={a!r}")
        if out is not None and (out[2] or out[3]):
            done = True
            break
    if done:  # a step after the end must be refused, whatever the action
        def refused():
            try:
                env.step(env.action_space.sample())
            except InvalidActionError:
                return True
            return False
        attempt(f"{target}.step after end", refused, lambda r: _assert(r, "stepped after the end"))
    env.close()


def _assert(cond, message: str) -> None:
    assert cond, message


@few(1.0)
@given(seed=seeds, actions=st.lists(actions_discrete, min_size=1, max_size=6), rounds=st.integers(1, 3))
def test_matrix_env_reset_step(seed, actions, rounds):
    _episode("prefgym/MatrixGame-v0", {"rounds": rounds}, seed, actions, "MatrixGame-v0")


@few(0.6)
@given(seed=seeds, actions=st.lists(actions_discrete, min_size=1, max_size=8))
def test_gridworld_env_reset_step(seed, actions):
    _episode("prefgym/Gridworld-v0", {}, seed, actions, "Gridworld-v0")


box_actions = st.one_of(
    hnp.arrays(np.float32, 1, elements=st.floats(-2, 2, width=32)),
    hnp.arrays(np.float64, st.integers(0, 3), elements=st.floats(allow_nan=True, allow_infinity=True)),
    arrays(max_dims=2, max_side=2), scalars,
)


@few(0.4)
@given(seed=seeds, actions=st.lists(box_actions, min_size=1, max_size=5))
def test_control_preference_env_reset_step(seed, actions):
    _episode("prefgym/PendulumPreference-v0", {"segment_length": 2, "horizon": 4}, seed, actions,
             "PendulumPreference-v0")


@few(0.4)
@given(seed=seeds, a0=box_actions, a1=box_actions)
def test_control_preference_parallel_env(seed, a0, a1):
    from prefgym.envs.registration import make_parallel

    env = make_parallel("prefgym/PendulumPreference-v0", segment_length=2, horizon=3)
    reset = attempt("PendulumPreference parallel.reset", lambda: env.reset(seed=seed), describe=repr(seed))
    if reset is None:
        return

    def ok(out):
        obs, rewards, terms, truncs, infos = out
        for agent in ("player_0", "player_1"):
            assert env.observation_space(agent).contains(obs[agent])
            assert np.isfinite(rewards[agent])
    attempt("PendulumPreference parallel.step", lambda: env.step({"player_0": a0, "player_1": a1}), ok,
            f"{a0!r} {a1!r}")
    env.close()


# ------------------------------------------------------------------ data
@st.composite
def pair_arrays(draw):
    n, L = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    arrs = {}
    for side in "ab":
        arrs[f"obs_{side}"] = draw(hnp.arrays(np.float32, (n, L, 2), elements=st.floats(-5, 5, width=32)))
        arrs[f"act_{side}"] = draw(hnp.arrays(np.float32, (n, L, 1), elements=st.floats(-1, 1, width=32)))
        arrs[f"mask_{side}"] = np.ones((n, L), bool)
        arrs[f"returns_{side}"] = draw(hnp.arrays(np.float64, n, elements=st.floats(-10, 10)))
    arrs["labels"] = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.5, 1.0])))
    for _ in range(draw(st.integers(0, 2))):  # break up to two arrays
        key = draw(st.sampled_from(sorted(arrs)))
        arrs[key] = draw(st.one_of(arrays(max_dims=3, max_side=4), scalars,
                                   st.just(np.full_like(arrs[key], np.nan, dtype=np.float64))))
    return arrs


@given(pair_arrays())
def test_preference_pairs_constructor_and_round_trip(arrs):
    pairs = attempt("PreferencePairs(...)", lambda: PreferencePairs(**arrs, env_id="Pendulum-v1"),
                    describe=repr({k: np.shape(v) for k, v in arrs.items()}))
    if pairs is None:
        return
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = pairs.save(Path(tmp) / "pairs.npz")

        def same(loaded):
            for k in PreferencePairs._ARRAYS:
                np.testing.assert_array_equal(getattr(loaded, k), getattr(pairs, k))
            assert loaded.env_id == pairs.env_id
        attempt("PreferencePairs.save/load", lambda: PreferencePairs.load(path, env_id="Pendulum-v1"), same)


@given(st.binary(max_size=200))
def test_preference_pairs_load_of_random_bytes(data):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.npz"
        path.write_bytes(data)
        attempt("PreferencePairs.load(random bytes)", lambda: PreferencePairs.load(path),
                lambda r: _assert(False, "random bytes loaded as a data set"), repr(data[:40]))


@pytest.mark.parametrize("argv_tail", [["--steps", "0"], ["--steps", "-3"], ["--steps", "x"]])
def test_data_demos_cli_counts(argv_tail, tmp_path, capsys):
    from prefgym.cli import main

    code = attempt("prefgym data demos (bad --steps)",
                   lambda: main(["data", "demos", "--env", "Pendulum-v1", "--policy", "x.zip",
                                 "--root", str(tmp_path), *argv_tail]),
                   lambda c: _assert(c == 2, f"exit code {c}"))
    assert code == 2 and "must be an integer" in capsys.readouterr().err
