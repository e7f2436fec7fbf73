"""prefgym.evaluation: win-rate intervals and exact menu-game quantities."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("transformers")

from prefgym.evaluation import (  # noqa: E402
    WinRate,
    entropy,
    kl_divergence,
    menu_duality_gap,
    menu_evaluator,
    menu_game,
    menu_win_rate,
    normal_interval,
    wilson_interval,
    win_rate_vs_initial,
)
from prefgym.games.matrix import planted_nash, rps  # noqa: E402
from prefgym.judges import FeatureRaterJudge, TableJudge, exact_win_rate  # noqa: E402

REPLIES = ["goodbye!", "hello there.", "I am fine."]
PROMPTS = ["User: hi\nAssistant:", "User: bye\nAssistant:"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _menu(tiny, reference=True):
    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    ref = copy.deepcopy(model) if reference else None
    return MenuPolicy(LMPolicy(copy.deepcopy(model), tok, reference_model=ref, max_new_tokens=4), REPLIES)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # the textbook value at 95%
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(1 - hi) and lo == pytest.approx(0.2366, abs=1e-4)
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < hi - lo  # narrows with n
    lo99, hi99 = wilson_interval(5, 10, confidence=0.99)
    assert lo99 < lo and hi99 > hi
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(1, 0)
    with pytest.raises(ValueError):
        wilson_interval(1, 10, confidence=1.0)


def test_normal_interval():
    m, lo, hi = normal_interval([0.2, 0.4, 0.6, 0.8])
    half = 1.959964 * np.std([0.2, 0.4, 0.6, 0.8], ddof=1) / 2
    assert m == pytest.approx(0.5)
    assert hi - m == pytest.approx(half, rel=1e-5) and m - lo == pytest.approx(half, rel=1e-5)
    assert normal_interval([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    assert normal_interval([0.3]) == (0.3, 0.0, 1.0)
    with pytest.raises(ValueError):
        normal_interval([])


def test_kl_and_entropy():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    assert kl_divergence(p, q) == pytest.approx(np.log(2))
    assert kl_divergence(p, p) == 0.0
    assert entropy(np.full(4, 0.25)) == pytest.approx(np.log(4)) and entropy(np.eye(3)).tolist() == [0, 0, 0]


def test_menu_game_gap_and_win_rate_are_exact():
    game = planted_nash(3, rank=1, seed=2)
    judge = TableJudge.from_preference(game.preference, REPLIES)
    g = menu_game(judge, REPLIES, PROMPTS)
    assert g.batch_shape == (2,) and np.allclose(g.preference[0], game.preference)
    ne = game.nash_equilibrium()
    probs = np.stack([ne, np.array([0.6, 0.3, 0.1])])
    gaps = menu_duality_gap(probs, judge, PROMPTS, responses=REPLIES)
    assert gaps[0] == pytest.approx(0.0, abs=1e-9) and gaps[1] == pytest.approx(game.duality_gap(probs[1]))
    opp = np.tile([0.2, 0.3, 0.5], (2, 1))
    wr = menu_win_rate(probs, opp, judge, PROMPTS, responses=REPLIES)
    for b in range(2):
        exact = exact_win_rate(judge, PROMPTS[b], (REPLIES, probs[b]), (REPLIES, opp[b]))
        assert wr[b] == pytest.approx(exact)
    assert wr[0] == pytest.approx(0.5)  # the NE wins exactly half against anything


def test_menu_evaluator_and_gap_of_a_menu_policy(tiny):
    menu = _menu(tiny)
    game = rps()
    judge = TableJudge.from_preference(game.preference, REPLIES)
    target = np.array([0.2, 0.3, 0.5])
    out = menu_evaluator(menu, judge, PROMPTS, target=target, record_probs=True)()
    pi = menu.probs(PROMPTS)
    assert out["gap_mean"] == pytest.approx(float(game.duality_gap(pi).mean()))
    assert out["gap_max"] == pytest.approx(float(game.duality_gap(pi).max()))
    assert out["kl_target_mean"] == pytest.approx(float(kl_divergence(target, pi).mean()))
    assert out["win_rate_vs_initial"] == pytest.approx(0.5)  # the policy is still its reference
    assert out["p1_2"] == pytest.approx(pi[1, 2])
    np.testing.assert_allclose(menu_duality_gap(menu, judge, PROMPTS), game.duality_gap(pi))


def test_win_rate_vs_initial_sampled_lm(tiny):
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    policy = LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model), max_new_tokens=5)
    judge = FeatureRaterJudge.length_lover()
    wr = win_rate_vs_initial(policy, judge, PROMPTS, num_samples=6, seed=1)
    assert isinstance(wr, WinRate) and wr.method == "normal" and wr.n == 12
    assert wr.low <= 0.5 <= wr.high  # the policy is its own initial model
    again = win_rate_vs_initial(policy, judge, PROMPTS, num_samples=6, seed=1)
    assert again == wr  # seeded
    b = win_rate_vs_initial(policy, judge, PROMPTS, num_samples=6, seed=1, bernoulli=True)
    assert b.method == "wilson" and 0 <= b.low <= b.mean <= b.high <= 1
    assert "wilson" in str(b) and b.as_dict()["n"] == 12
    no_ref = LMPolicy(copy.deepcopy(model), tok, max_new_tokens=5)
    with pytest.raises(ValueError, match="initial"):
        win_rate_vs_initial(no_ref, judge, PROMPTS)


def test_win_rate_vs_initial_menu_policy(tiny):
    menu = _menu(tiny)
    judge = TableJudge.from_preference(rps().preference, REPLIES)
    wr = win_rate_vs_initial(menu, judge, PROMPTS, num_samples=20, seed=0)
    assert wr.n == 40 and wr.low <= 0.5 <= wr.high
    init = _menu(tiny, reference=False)
    assert win_rate_vs_initial(menu, judge, PROMPTS, num_samples=5, initial=init).n == 10
