"""Synthetic teachers (B-Pref noise models) against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from prefgym.teachers import TEACHERS, SyntheticTeacher, as_teacher, make_teacher

N = 20_000  # queries for the statistical checks


def within_3se(observed: np.ndarray, expected: float) -> bool:
    """The mean of ``observed`` is within 3 standard errors of ``expected`` (binomial SE)."""
    se = np.sqrt(max(expected * (1 - expected), 1e-12) / observed.size)
    return abs(observed.mean() - expected) <= 3 * se


def pairs(n: int, rng: np.random.Generator, L: int = 10, gap: float = 1.0):
    """Segments whose returns differ by ``gap * L`` on average; ``a`` better."""
    a = rng.normal(gap, 0.1, size=(n, L))
    b = rng.normal(0.0, 0.1, size=(n, L))
    return a, b


def test_oracle_prefers_the_higher_return_and_ties_are_half():
    t = SyntheticTeacher()
    a = np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    rng = np.random.default_rng(0)
    assert np.array_equal(t.label(a, b, rng), [1.0, 0.0, 0.5])
    assert np.array_equal(t.prob(a, b), [1.0, 0.0, 0.5])
    # a single query without a batch axis
    assert t.label([1.0, 1.0], [0.0, 0.0], rng) == 1.0


def test_stochastic_teacher_is_bradley_terry_with_temperature():
    rng = np.random.default_rng(1)
    temperature = 2.0
    t = SyntheticTeacher(temperature=temperature)
    for diff in (-3.0, 0.0, 0.7, 2.5):
        a = np.full((N, 5), diff / 5)
        b = np.zeros((N, 5))
        p = expit(diff / temperature)
        assert np.allclose(t.prob(a, b), p)
        y = t.label(a, b, rng)
        assert set(np.unique(y)) <= {0.0, 1.0}
        assert within_3se(y, p), (diff, y.mean(), p)
    assert np.allclose(make_teacher("stochastic").prob([[1.0]], [[0.0]]), expit(1.0))  # B-Pref beta = 1


def test_myopic_teacher_weights_later_steps_more():
    t = SyntheticTeacher(gamma=0.5)
    r = np.array([1.0, 2.0, 4.0])
    assert t.utilities(r) == pytest.approx(0.25 * 1 + 0.5 * 2 + 4.0)  # gamma^(n - 1 - t)
    # reward early vs reward late: equal returns, the myopic teacher prefers late
    early, late = np.array([[3.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 3.0]])
    assert SyntheticTeacher().prob(early, late)[0] == 0.5
    assert t.label(early, late, np.random.default_rng(0))[0] == 0.0
    # padding after a short segment: the last *valid* step weighs 1
    padded, mask = np.array([1.0, 2.0, 0.0]), np.array([True, True, False])
    assert t.utilities(padded, mask) == pytest.approx(0.5 * 1 + 2.0)
    assert make_teacher("myopic").gamma == 0.9


def test_mistake_rate_flips_that_fraction_of_labels():
    rng = np.random.default_rng(2)
    eps = 0.1
    a, b = pairs(N, rng)
    oracle = SyntheticTeacher().label(a, b, rng)
    assert np.all(oracle == 1.0)
    y = SyntheticTeacher(eps_mistake=eps).label(a, b, rng)
    flipped = (y != oracle).astype(float)
    assert within_3se(flipped, eps), flipped.mean()
    assert np.allclose(SyntheticTeacher(eps_mistake=eps).prob(a, b), 1 - eps)
    # with a stochastic teacher: E[y] = (1 - eps) p + eps (1 - p)
    t = SyntheticTeacher(temperature=1.0, eps_mistake=0.2)
    a1, b1 = np.full((N, 1), 0.5), np.zeros((N, 1))
    p = expit(0.5)
    expected = 0.8 * p + 0.2 * (1 - p)
    assert np.allclose(t.prob(a1, b1), expected)
    assert within_3se(t.label(a1, b1, rng), expected)


def test_skip_teacher_gives_no_label_when_both_returns_are_low():
    t = SyntheticTeacher(skip_threshold=1.0)
    a = np.array([[0.2, 0.3], [0.5, 0.5], [2.0, 0.0], [0.5, 0.6]])
    b = np.array([[0.1, 0.0], [0.0, 0.0], [0.0, 0.0], [-5.0, 0.0]])
    y = t.label(a, b, np.random.default_rng(0))
    # max(R_a, R_b) = 0.5, 1.0 (<= threshold: skipped), 2.0, 1.1
    assert np.isnan(y[0]) and np.isnan(y[1])
    assert y[2] == 1.0 and y[3] == 1.0
    assert np.isnan(t.prob(a, b)[:2]).all()
    # B-Pref: threshold = eps_skip * margin (mean true segment return)
    assert make_teacher("skip", margin=30.0).skip_threshold == pytest.approx(3.0)


def test_equal_teacher_says_half_within_the_threshold_and_overrides_mistakes():
    t = SyntheticTeacher(equal_threshold=0.5, eps_mistake=1.0)  # every decided label flipped
    a = np.array([[1.0, 0.2], [1.0, 2.0], [0.0, 0.0]])
    b = np.array([[1.0, 0.0], [0.0, 0.0], [0.3, 0.0]])
    y = t.label(a, b, np.random.default_rng(0))
    assert y[0] == 0.5 and y[2] == 0.5  # |R_a - R_b| = 0.2, 0.3 < 0.5
    assert y[1] == 0.0  # decided (a better), then flipped
    assert np.allclose(t.prob(a, b), [0.5, 0.0, 0.5])
    assert make_teacher("equal", margin=-20.0).equal_threshold == pytest.approx(2.0)


def test_skip_overrides_equal_and_counts_in_prob():
    t = SyntheticTeacher(skip_threshold=0.0, equal_threshold=10.0)
    a, b = np.array([[-1.0]]), np.array([[-2.0]])
    assert np.isnan(t.label(a, b, np.random.default_rng(0))[0])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": np.inf}, "temperature"),
    ({"gamma": 0.0}, "gamma"),
    ({"gamma": 1.5}, "gamma"),
    ({"eps_mistake": 1.5}, "eps_mistake"),
    ({"equal_threshold": -1.0}, "equal_threshold"),
])
def test_invalid_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticTeacher(**kwargs)


def test_named_teachers_and_specs():
    assert set(TEACHERS) == {"oracle", "stochastic", "myopic", "mistake", "skip", "equal"}
    with pytest.raises(ValueError, match="margin"):
        make_teacher("skip")
    with pytest.raises(ValueError, match="unknown teacher"):
        make_teacher("lazy")
    assert make_teacher("skip", skip_threshold=2.0).skip_threshold == 2.0
    t = make_teacher("mistake", temperature=0.5)
    assert t == SyntheticTeacher(temperature=0.5, eps_mistake=0.1)
    assert SyntheticTeacher.from_config(t.config()) == t
    assert as_teacher(None) == SyntheticTeacher()
    assert as_teacher("myopic") == SyntheticTeacher(gamma=0.9)
    assert as_teacher({"temperature": 2.0}) == SyntheticTeacher(temperature=2.0)
    assert as_teacher({"name": "equal", "equal_threshold": 1.0}).equal_threshold == 1.0
    assert as_teacher(t) is t
    with pytest.raises(TypeError):
        as_teacher(3)


def test_shapes_masks_and_nan_checks():
    t = SyntheticTeacher(temperature=1.0)
    rng = np.random.default_rng(0)
    assert t.label(np.zeros((4, 3, 7)), np.zeros((4, 3, 7)), rng).shape == (4, 3)
    with pytest.raises(ValueError, match="mask shape"):
        t.prob(np.zeros((2, 3)), np.zeros((2, 3)), mask_a=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="NaN"):
        t.prob([[np.nan]], [[0.0]])
    with pytest.raises(ValueError, match="time axis"):
        t.prob(1.0, 0.0)
    # masked steps do not count, even if they hold NaN-free junk
    r = np.array([[1.0, 100.0]])
    assert t.returns(r, np.array([[True, False]]))[0] == 1.0
