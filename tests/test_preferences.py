import numpy as np
import pytest
from scipy.stats import norm

from prefgym.preferences import (
    BradleyTerry,
    Cyclic,
    PopulationMixture,
    TabularPreference,
    Thurstone,
    as_preference,
    validate_preference_matrix,
)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.ones((2, 3)) / 2, "square"),
        ([[0.5, np.nan], [0.5, 0.5]], r"NaN at entry P\[0, 1\]"),
        ([[0.5, 1.2], [-0.2, 0.5]], r"P\[0, 1\] = 1.2 lies outside \[0, 1\]"),
        ([[0.5, 0.7], [0.4, 0.5]], r"P\[0, 1\] \+ P\[1, 0\] = 1.1 != 1"),
        ([[0.6, 0.5], [0.5, 0.5]], r"diagonal entry P\[0, 0\] = 0.6 must be 1/2"),
    ],
)
def test_bad_matrices_name_the_offending_entry(matrix, message):
    with pytest.raises(ValueError, match=message):
        TabularPreference(matrix)


def test_batched_validation_names_the_game():
    P = np.stack([Cyclic(3).matrix(), Cyclic(3).matrix()])
    P[1, 2, 2] = 0.4
    with pytest.raises(ValueError, match=r"game \(1,\) diagonal entry P\[2, 2\]"):
        validate_preference_matrix(P)


def test_bradley_terry_closed_form_and_temperature():
    r = np.array([0.0, 1.0, -2.0])
    bt = BradleyTerry(r, temperature=2.0)
    assert bt.prob(1, 0) == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert np.allclose(bt.matrix() + bt.matrix().T, 1.0)
    assert np.allclose(np.diag(bt.matrix()), 0.5)
    # batched, broadcasting
    assert bt.prob(np.array([0, 1]), np.array([[2], [0]])).shape == (2, 2)


def test_thurstone_is_normal_cdf_of_mean_difference():
    th = Thurstone([0.0, 1.0], scale=0.5)
    assert th.prob(1, 0) == pytest.approx(norm.cdf(1.0 / (np.sqrt(2) * 0.5)))


def test_cyclic_is_rock_paper_scissors_and_ties_opposites():
    P = Cyclic(3).matrix()
    assert P[0, 1] == 1.0 and P[1, 2] == 1.0 and P[2, 0] == 1.0
    P4 = Cyclic(4, strength=0.5).matrix()
    assert P4[0, 2] == 0.5 and P4[0, 1] == 0.75 and P4[0, 3] == 0.25
    P5 = Cyclic(5).matrix()
    assert np.allclose(P5.sum(axis=1), 2.5)  # every item beats exactly two others


def test_population_of_transitive_raters_is_cyclic_in_aggregate():
    pop = PopulationMixture.condorcet(temperature=0.05)
    for rater in pop.raters:  # each rater has a strict transitive ranking
        P = rater.matrix()
        order = np.argsort(-P.sum(axis=1))
        assert all(P[order[i], order[j]] > 0.5 for i in range(3) for j in range(i + 1, 3))
    P = pop.matrix()
    assert P[0, 1] > 0.5 and P[1, 2] > 0.5 and P[2, 0] > 0.5  # A > B > C > A


def test_population_from_features_and_weight_errors():
    F = np.eye(3)
    pop = PopulationMixture.from_features(F, np.eye(3), population=[0.5, 0.25, 0.25])
    assert pop.n_items == 3
    with pytest.raises(ValueError, match="summing to 1"):
        PopulationMixture([BradleyTerry([0, 1])], weights=[0.3])
    with pytest.raises(ValueError, match="share d"):
        PopulationMixture.from_features(F, np.ones((2, 2)))


def test_bad_items_and_sampling():
    P = as_preference([[0.5, 0.9], [0.1, 0.5]])
    with pytest.raises(ValueError, match=r"item 2 out of range \[0, 2\)"):
        P.prob(2, 0)
    with pytest.raises(ValueError, match="integers"):
        P.prob(0.5, 0)
    rng = np.random.default_rng(0)
    draws = P.sample(np.zeros(20_000, int), np.ones(20_000, int), rng)
    assert abs(draws.mean() - 0.9) < 4 * np.sqrt(0.09 / 20_000)
    assert P.win_rate(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.9)
