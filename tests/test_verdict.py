"""The seed-aggregation verdicts on made-up per-seed data (the rules of linvae.experiments._verdict)."""
import numpy as np
import pytest

from linvae.experiments._verdict import greater, mean_sd, trend


def test_flat_measurement_is_not_confirmed():
    v, reason = trend([[3, 3, 3], [3, 3, 3], [3, 3, 3]])
    assert v == "not confirmed" and "flat" in reason


def test_consistent_trend_on_every_seed_is_confirmed():
    values = [[1, 4, 8, 12], [2, 5, 9, 13], [1, 3, 10, 14]]
    assert trend(values) == ("confirmed", "")
    assert trend(np.array(values)[:, ::-1], increasing=False) == ("confirmed", "")


def test_trend_reversed_on_one_seed_is_not_confirmed_even_if_the_mean_is_ordered():
    values = [[1, 6, 9, 14], [2, 7, 10, 15], [12, 9, 8, 7]]      # seed 2 goes the other way
    mean = np.mean(values, axis=0)
    assert np.all(np.diff(mean) >= 0)                              # the mean alone would pass
    v, reason = trend(values)
    assert v == "not confirmed" and "seed(s) 2" in reason


def test_trend_whose_end_points_overlap_within_one_sd_is_not_confirmed():
    values = [[1, 2, 3], [5, 6, 7], [1, 1.5, 9]]
    v, reason = trend(values)
    assert v == "not confirmed" and "overlap" in reason


def test_unordered_mean_is_not_confirmed_and_names_the_step():
    v, reason = trend([[1, 5, 3, 8], [1, 6, 2, 9], [2, 5, 3, 9]])
    assert v == "not confirmed" and "2 → 3" in reason


def test_wrong_direction_is_not_confirmed():
    assert trend([[1, 2, 3], [1, 2, 4]], increasing=False)[0] == "not confirmed"


def test_comparison_rule():
    assert greater([10, 11, 12], [1, 2, 1]) == ("confirmed", "")
    v, reason = greater([10, 1, 12], [1, 2, 1])
    assert v == "not confirmed" and "seed(s) [1]" in reason
    v, reason = greater([5, 6, 7], [4, 5, 6])
    assert v == "not confirmed" and "overlap" in reason


def test_mean_sd_is_over_seeds():
    mean, sd, shown = mean_sd([[1, 2], [3, 6]])
    np.testing.assert_allclose(mean, [2, 4])
    np.testing.assert_allclose(sd, [np.std([1, 3], ddof=1), np.std([2, 6], ddof=1)])
    assert shown[0] == "2.00 ± 1.41"


@pytest.mark.parametrize("bad", [[[1]], [[1, np.nan]], [1]])
def test_bad_input_is_rejected(bad):
    with pytest.raises(ValueError, match="settings"):
        trend(bad)


def test_greater_names_a_reversal_instead_of_an_overlap():
    from linvae.experiments._verdict import greater

    v, why = greater([0.28, 0.27, 0.28], [0.81, 0.69, 0.81])      # clearly the other way round
    assert v == "not confirmed" and "reversed" in why and "overlap" not in why
    v, why = greater([0.5, 0.6, 0.7], [0.55, 0.5, 0.65])           # mixed: overlapping intervals
    assert v == "not confirmed" and "overlap" in why and "reversed" not in why
