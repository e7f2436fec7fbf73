"""IQM and probability of improvement with stratified-bootstrap intervals (rliable's estimators)."""

import numpy as np
import pytest

from prefgym.errors import InvalidArgumentError

pytest.importorskip("rliable", reason="rliable is not installed (pip install 'prefgym[rliable]')")

from rliable import metrics  # noqa: E402

from prefgym.reproductions.rl_intervals import (  # noqa: E402
    Interval,
    _improvement_batch,
    _iqm_batch,
    _resample,
    improvement_interval,
    interval_estimates,
    iqm,
    iqm_interval,
    judge,
    probability_of_improvement,
)


def test_iqm_is_the_mean_of_the_middle_half_of_all_scores():
    scores = np.array([[8.0, 1.0], [3.0, 100.0], [5.0, -50.0], [4.0, 6.0]])  # 8 scores, 2 tasks
    # sorted: -50 1 3 4 5 6 8 100; drop 2 lowest and 2 highest -> mean(3, 4, 5, 6)
    assert iqm(scores) == pytest.approx(4.5, abs=1e-12)
    assert iqm(np.arange(1.0, 13.0)) == pytest.approx(np.mean(np.arange(4.0, 10.0)))  # 12 runs, 1 task


def test_probability_of_improvement_is_the_pair_count_with_ties_half():
    x = np.array([[3.0, 1.0], [1.0, 5.0]])
    y = np.array([[2.0, 1.0], [2.0, 0.0], [3.0, 7.0]])
    # task 0: x=(3,1) vs y=(2,2,3): 3>2,3>2,3=3 -> 2.5; 1 loses all -> 0 -> 2.5/6
    # task 1: x=(1,5) vs y=(1,0,7): 1=1 (.5), 1>0 (1), 1<7; 5>1, 5>0, 5<7 -> 3.5/6
    assert probability_of_improvement(x, y) == pytest.approx((2.5 / 6 + 3.5 / 6) / 2, abs=1e-12)
    assert probability_of_improvement(x, x) == 0.5


def test_vectorised_bootstrap_statistics_equal_rliables_metrics_on_every_sample():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=(5, 3)), 1)  # rounding makes ties
    y = np.round(rng.normal(size=(4, 3)), 1)
    xb, yb = _resample(x, 50, rng), _resample(y, 50, rng)
    assert np.allclose(_iqm_batch(xb), [metrics.aggregate_iqm(s) for s in xb], atol=1e-12)
    assert np.allclose(_improvement_batch(xb, yb),
                       [metrics.probability_of_improvement(a, b) for a, b in zip(xb, yb, strict=True)],
                       atol=1e-12)
    # stratified: every resampled column holds only that task's scores
    for t in range(3):
        assert np.isin(xb[:, :, t], x[:, t]).all()


def test_intervals_are_seeded_and_bracket_the_point_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, size=(5, 3))
    y = rng.normal(0.0, 1.0, size=(5, 3))
    a = iqm_interval(x, reps=2000, seed=7)
    assert a == iqm_interval(x, reps=2000, seed=7)  # a rerun gives the same interval, bit for bit
    assert a != iqm_interval(x, reps=2000, seed=8)
    assert a.low <= a.point <= a.high and a.high - a.low > 0
    p = improvement_interval(x, y, reps=2000, seed=7)
    assert 0.0 <= p.low <= p.point <= p.high <= 1.0
    # wider intervals at 99% than at 95%
    wide = iqm_interval(x, reps=2000, confidence=0.99, seed=7)
    assert wide.low <= a.low and wide.high >= a.high


def test_complete_separation_gives_a_degenerate_interval_and_a_held_verdict():
    x = np.array([[10.0], [11.0], [12.0], [13.0], [14.0]])
    y = x - 10.0
    p = improvement_interval(x, y, reps=500)
    assert (p.point, p.low, p.high) == (1.0, 1.0, 1.0)
    assert judge(p, 0.5) == "held"
    assert judge(improvement_interval(y, x, reps=500), 0.5) == "did not hold"
    assert judge(Interval(0.6, 0.4, 0.8), 0.5) == "inconclusive"


def test_interval_estimates_collects_methods_and_pairs():
    s = {"a": np.arange(10.0).reshape(5, 2), "b": np.zeros((5, 2))}
    est = interval_estimates(s, pairs=[("a", "b")], reps=300)
    assert set(est["iqm"]) == {"a", "b"} and set(est["probability_of_improvement"]) == {"a>b"}
    assert est["iqm"]["b"] == Interval(0.0, 0.0, 0.0, 0.95, 300)
    # task 0: a=(0,2,4,6,8) vs five 0s: 20 wins + 5 ties -> 0.9; task 1: a=(1,3,..,9) -> 1
    assert est["probability_of_improvement"]["a>b"].point == pytest.approx(0.95)
    with pytest.raises(InvalidArgumentError, match="'c'"):
        interval_estimates(s, pairs=[("a", "c")], reps=10)


def test_bad_inputs_name_the_argument():
    with pytest.raises(InvalidArgumentError, match="finite"):
        iqm([[1.0, np.nan]])
    with pytest.raises(InvalidArgumentError, match="same number of tasks"):
        probability_of_improvement(np.ones((3, 2)), np.ones((3, 1)))
    with pytest.raises(InvalidArgumentError, match="reps"):
        iqm_interval(np.ones((3, 1)), reps=0)
    with pytest.raises(InvalidArgumentError, match="confidence"):
        iqm_interval(np.ones((3, 1)), confidence=1.5)
