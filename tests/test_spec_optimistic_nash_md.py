"""Optimistic Nash-MD: OMWU at tau = 0, and the regularised NE of Nash-MD as its last iterate."""

import numpy as np

from prefgym.agents import make_agent
from prefgym.games.matrix import planted_nash


def test_tau_zero_is_omwu_started_from_pi_0_equal_pi_1():
    g = planted_nash(5, rank=2, seed=4)
    ours = make_agent("optimistic_nash_md", g, learning_rate=0.5, tau=0.0).learn(50, progress_bar=False)
    omwu = make_agent("omwu", g, learning_rate=0.5, previous_at_start="current").learn(50, progress_bar=False)
    np.testing.assert_allclose(ours.policy, omwu.policy, atol=1e-12)
    np.testing.assert_allclose(ours.history["last_gap"], omwu.history["last_gap"], atol=1e-12)


def test_last_iterate_converges_to_the_fixed_point_of_nash_md():
    g = planted_nash(5, rank=2, seed=4)
    kw = {"learning_rate": 0.5, "tau": 0.1}
    ours = make_agent("optimistic_nash_md", g, **kw).learn(1000, progress_bar=False)
    nash_md = make_agent("nash_md", g, **kw).learn(1000, progress_bar=False)
    # at a fixed point the correction g_t - g_{t-1} vanishes, so both rules share it
    np.testing.assert_allclose(ours.policy, nash_md.policy, atol=1e-10)
    assert abs(ours.regularized_gap() - nash_md.regularized_gap()) < 1e-10
    before = ours.policy.copy()
    assert np.abs(ours.learn(1, progress_bar=False).policy - before).max() < 1e-12  # a fixed point
    # regularised: not the NE of the game, whose duality gap is 0
    assert ours.current_gap() > 1e-2
