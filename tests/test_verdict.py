"""The three-outcome seed verdicts on made-up per-seed data (the rules of linvae.experiments._verdict),
checked against an independent computation of the noise rule."""
import numpy as np
import pytest

from linvae.experiments._verdict import NOISE_FACTOR, difference, greater, mean_sd, trend


def _se(a, b):                         # independent: Welch's standard error from the two samples
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.sqrt(np.var(a, ddof=1) / a.size + np.var(b, ddof=1) / b.size)


def test_difference_is_the_welch_standard_error():
    a, b = [1.0, 2.0, 4.0], [5.0, 5.5, 9.0, 7.0]
    delta, se = difference(a, b)
    assert delta == pytest.approx(np.mean(b) - np.mean(a))
    assert se == pytest.approx(_se(a, b))
    assert np.isnan(difference([1.0], [2.0, 3.0])[1])              # one seed: no noise estimate


def test_flat_measurement_is_inconclusive_not_confirmed():
    v, reason = trend([[3, 3, 3], [3, 3, 3], [3, 3, 3]])
    assert v == "inconclusive" and "does not separate" in reason


def test_clear_trend_is_confirmed_and_states_its_effect():
    values = [[1, 4, 8, 12], [2, 5, 9, 13], [1, 3, 10, 14]]
    v, reason = trend(values)
    assert v == "confirmed" and "Δ = +11.7" in reason
    assert trend(np.array(values)[:, ::-1], increasing=False)[0] == "confirmed"


def test_clear_trend_the_other_way_is_contradicted():
    values = [[12, 8, 4, 1], [13, 9, 5, 2], [14, 10, 3, 1]]
    v, reason = trend(values)
    assert v == "contradicted" and "against the claim" in reason


def test_end_points_within_noise_are_inconclusive():
    values = [[1, 2, 3], [5, 6, 7], [1, 1.5, 9]]
    first, last = np.array(values)[:, 0], np.array(values)[:, -1]
    assert abs(last.mean() - first.mean()) <= NOISE_FACTOR * _se(first, last)   # the premise
    v, reason = trend(values)
    assert v == "inconclusive" and "within seed noise" in reason


def test_a_step_reversed_within_noise_does_not_block_a_clear_trend():
    # fig3a's ReLU shape: 8 → 4.33 → 3.33 falls, with a small wrong-way wobble in the middle on one seed
    values = [[8, 4, 4], [8, 5, 3], [8, 4, 3]]
    assert trend(values, increasing=False)[0] == "confirmed"
    wobble = [[8, 4, 5], [8, 5, 3], [8, 4, 3]]                     # 4.33 → 3.67: within noise of flat
    assert trend(wobble, increasing=False)[0] == "confirmed"


def test_a_step_reversed_beyond_noise_contradicts_a_monotone_claim_and_is_named():
    values = [[1, 9, 3, 12], [1, 9, 3, 12], [2, 10, 3, 13]]        # up overall, 2 → 3 falls on every seed
    v, reason = trend(values)
    assert v == "contradicted" and "step 2 → 3" in reason


def test_one_seed_is_inconclusive():
    v, reason = trend([[1, 2, 3]])
    assert v == "inconclusive" and "one seed" in reason


@pytest.mark.parametrize("a, b, expected", [
    ([10, 11, 12], [1, 2, 1], "confirmed"),
    ([1, 2, 1], [10, 11, 12], "contradicted"),
    ([5, 6, 7], [4, 5, 6], "inconclusive"),                        # Δ = 1, 2·SE = 1.63
    ([0, 0, 0], [0, 0, 0], "inconclusive"),                        # fig5's 0 vs 0: the measure cannot separate
    ([1, 1, 1], [0, 0, 0], "confirmed"),                           # no spread at all: any difference counts
])
def test_comparison_rule(a, b, expected):
    delta, se = np.mean(a) - np.mean(b), _se(a, b)
    independent = ("confirmed" if delta > NOISE_FACTOR * se and delta > 0 else
                   "contradicted" if delta < -NOISE_FACTOR * se and delta < 0 else "inconclusive")
    assert independent == expected
    assert greater(a, b)[0] == expected


def test_comparison_names_why():
    assert "reversed" in greater([0.28, 0.27, 0.28], [0.81, 0.69, 0.81])[1]
    assert "within seed noise" in greater([0.5, 0.6, 0.7], [0.55, 0.5, 0.65])[1]
    assert "does not separate" in greater([0, 0, 0], [0, 0, 0])[1]


def test_mean_sd_is_over_seeds():
    mean, sd, shown = mean_sd([[1, 2], [3, 6]])
    np.testing.assert_allclose(mean, [2, 4])
    np.testing.assert_allclose(sd, [np.std([1, 3], ddof=1), np.std([2, 6], ddof=1)])
    assert shown[0] == "2.00 ± 1.41"


@pytest.mark.parametrize("bad", [[[1]], [[1, np.nan]], [1]])
def test_bad_input_is_rejected(bad):
    with pytest.raises(ValueError, match="settings"):
        trend(bad)


def test_direction_must_be_a_bool():
    with pytest.raises(TypeError, match="increasing"):
        trend([[1, 2], [1, 3]], increasing="yes")


def _meta_with(tmp_path, exp_id, verdict, rules):
    import json
    import os

    os.makedirs(tmp_path / exp_id)
    meta = {"claims": [{"claim": "c", "prediction": "p", "measured": "m", "verdict": verdict, "category": "paper"}]}
    if rules is not None:
        meta["verdict_rules"] = rules
    (tmp_path / exp_id / "meta.json").write_text(json.dumps(meta))


def test_report_defines_its_measures_and_flags_rows_judged_under_earlier_rules(tmp_path):
    from linvae.experiments._report import build_report
    from linvae.experiments._verdict import RULES

    _meta_with(tmp_path, "old", "not confirmed", ["trend rule: seed mean ordered ..."])
    _meta_with(tmp_path, "new", "inconclusive", RULES)
    registry = {"old": (None, None, "an old run"), "new": (None, None, "a new run")}
    text = build_report(str(tmp_path), registry)
    header = text.split("## Summary")[0]
    for measure in ("(ε, δ)-collapsed count", "collapse score", "KL-fraction AU", "variance AU", "Burda"):
        assert measure in header
    assert "contradicted" in header and "inconclusive" in header
    old, new = text.split("### old")[1].split("### new")
    assert "judged under earlier rules" in old and "judged under earlier rules" not in new
    assert "to be re-run: 1 (`old`)" in text
    assert "1 not confirmed" in text and "1 inconclusive" in text


def test_report_says_each_runs_commit_and_what_its_models_cost(tmp_path):
    """Each experiment's section names the commit it ran at (or that none was recorded) and, for
    a torch experiment, the models it trained and loaded and its cost in seconds."""
    import json

    from linvae.experiments._report import build_report
    from linvae.experiments._verdict import RULES

    _meta_with(tmp_path, "old", "inconclusive", RULES)
    _meta_with(tmp_path, "new", "confirmed", RULES)
    meta = json.loads((tmp_path / "new" / "meta.json").read_text())
    meta.update(provenance={"commit": "0123456789abcdef", "clean": True}, cost={"seconds_all_sessions": 812.4},
                training={"models_trained": 4, "models_loaded": 17, "train_seconds_all_sessions": 700.2,
                          "eval_seconds_all_sessions": 112.2})
    (tmp_path / "new" / "meta.json").write_text(json.dumps(meta))
    text = build_report(str(tmp_path), {"old": (None, None, "o"), "new": (None, None, "n")})
    old, new = text.split("### old")[1].split("### new")
    assert "no commit recorded" in old and "models trained" not in old
    assert "ran at commit 0123456789" in new and "uncommitted" not in new
    assert "models trained 4, loaded from the model store 17" in new
    assert "cost 812 s (training 700 + evaluation 112, every session)" in new
