"""Metrics and cohort rules: equal to scikit-learn, CIs that cover, truth rules."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from core import metrics
from core.cohort import cohen_kappa_by_finding, finding_table, truth_from_reference, truth_from_verdicts


def _sample(n, rng, shift=1.0, prevalence=0.3):
    y = rng.random(n) < prevalence
    s = rng.normal(size=n) + shift * y
    return y, 1 / (1 + np.exp(-s))


def test_auc_and_roc_points_equal_sklearn():
    rng = np.random.default_rng(0)
    y, s = _sample(500, rng)
    s = np.round(s, 2)  # ties too
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s))
    fpr, tpr, thr = metrics.roc_points(y, s)
    ref = roc_curve(y, s)
    for a, b in zip((fpr, tpr, thr), ref):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(metrics.auc(np.ones(5), np.arange(5)))


def test_weighted_bootstrap_auc_equals_sklearn_on_resamples():
    rng = np.random.default_rng(1)
    y, s = _sample(300, rng)
    s = np.round(s, 2)
    weights = metrics.bootstrap_weights(len(y), 5, None, rng)
    order = np.argsort(s, kind="mergesort")
    starts = np.flatnonzero(np.r_[True, s[order][1:] != s[order][:-1]])
    got = metrics._weighted_auc(y[order].astype(float), starts, weights[:, order])
    for b in range(5):
        idx = np.repeat(np.arange(len(y)), weights[b].astype(int))
        assert got[b] == pytest.approx(roc_auc_score(y[idx], s[idx]))


def test_auc_ci_covers_true_value_in_simulation():
    # true AUC of N(0,1) vs N(1,1) is Phi(1/sqrt(2))
    from scipy.stats import norm

    true = norm.cdf(1 / np.sqrt(2))
    rng = np.random.default_rng(2)
    hits = 0
    trials = 200
    for t in range(trials):
        y, s = _sample(300, rng)
        ci = metrics.auc_ci(y, s, n_boot=300, seed=t)
        hits += ci.low <= true <= ci.high
    assert 0.90 <= hits / trials <= 0.99


def test_patient_bootstrap_is_wider_when_images_of_a_patient_repeat():
    rng = np.random.default_rng(3)
    y, s = _sample(100, rng)
    y4, s4, groups = np.repeat(y, 4), np.repeat(s, 4), np.repeat(np.arange(100), 4)
    by_image = metrics.auc_ci(y4, s4, n_boot=500)
    by_patient = metrics.auc_ci(y4, s4, groups=groups, n_boot=500)
    assert (by_patient.high - by_patient.low) > 1.5 * (by_image.high - by_image.low)


def test_wilson_interval_matches_statsmodels_formula():
    ci = metrics.wilson(8, 10)
    assert ci.value == 0.8 and ci.low == pytest.approx(0.4902, abs=1e-3) and ci.high == pytest.approx(0.9433, abs=1e-3)


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95])
def test_threshold_for_sensitivity_reaches_target_and_is_highest(target):
    rng = np.random.default_rng(4)
    y, s = _sample(400, rng)
    t = metrics.threshold_for_sensitivity(y, s, target)
    assert metrics.confusion_at(y, s, t).sensitivity().value >= target
    higher = np.nextafter(t, 1)
    assert metrics.confusion_at(y, s, higher).sensitivity().value < target


def test_threshold_for_specificity_and_youden():
    rng = np.random.default_rng(5)
    y, s = _sample(400, rng)
    t = metrics.threshold_for_specificity(y, s, 0.9)
    assert metrics.confusion_at(y, s, t).specificity().value >= 0.9
    ty = metrics.threshold_youden(y, s)
    c = metrics.confusion_at(y, s, ty)
    fpr, tpr, _ = roc_curve(y, s)
    assert c.sensitivity().value + c.specificity().value - 1 == pytest.approx((tpr - fpr).max())


def test_false_positive_rate_and_wrong_share_are_different_things():
    c = metrics.Confusion(tp=40, fp=60, tn=900, fn=10)
    assert c.false_positive_rate().value == pytest.approx(60 / 960)
    assert c.false_discovery_rate().value == pytest.approx(0.6)  # the published "60%"


def test_calibration_error():
    p = np.array([0.1, 0.1, 0.9, 0.9])
    ece, bins = metrics.expected_calibration_error(np.array([0, 0, 1, 1]), p)
    assert ece == pytest.approx(0.1)
    assert bins["count"].sum() == 4


def V(rows):
    return pd.DataFrame(rows, columns=["study_id", "label", "reviewer_id", "present"])


def test_truth_rules_single_and_disagreement():
    one = V([(1, "Mass", 10, True)])
    assert truth_from_verdicts(one).present.tolist() == [True]
    tie = V([(1, "Mass", 10, True), (1, "Mass", 11, False)])
    assert truth_from_verdicts(tie, "majority").empty  # a tie without adjudicator stays unknown
    assert truth_from_verdicts(tie, "majority", adjudicators={11}).present.tolist() == [False]
    three = V([(1, "Mass", 10, True), (1, "Mass", 11, True), (1, "Mass", 12, False)])
    assert truth_from_verdicts(three, "majority", adjudicators={12}).present.tolist() == [True]
    assert truth_from_verdicts(three, "adjudicator", adjudicators={12}).present.tolist() == [False]
    assert truth_from_verdicts(three, "adjudicator").present.tolist() == [True]  # no adjudicator: majority
    assert truth_from_verdicts(three, "reviewer", reviewer_id=12).present.tolist() == [False]
    with pytest.raises(ValueError):
        truth_from_verdicts(three, "reviewer")


def test_reference_truth_and_finding_table_equal_sklearn():
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"study_id": range(200),
                        "finding_labels": ["Mass" if rng.random() < 0.3 else "No Finding" for _ in range(200)]})
    truth = truth_from_reference(ref)
    assert len(truth) == 200 * 15
    mass = truth[truth["label"] == "Mass"].sort_values("study_id")
    p = np.clip(mass["present"].to_numpy() * 0.3 + rng.random(200) * 0.7, 0, 1)
    preds = pd.DataFrame({"study_id": range(200), "label": "Mass", "probability": p, "threshold": 0.5})
    table = finding_table(truth, preds, n_boot=200)
    row = table.set_index("finding").loc["Mass"]
    assert row["auc"] == pytest.approx(roc_auc_score(mass["present"], p))
    assert row["auc_low"] < row["auc"] < row["auc_high"]
    assert row["tp"] + row["fn"] == mass["present"].sum()


def test_kappa_per_finding():
    v = V([(i, "Mass", r, bool((i + (r == 11 and i < 3)) % 2)) for i in range(10) for r in (10, 11)])
    k = cohen_kappa_by_finding(v)
    assert k.loc[0, "studies_read_twice"] == 10 and -1 <= k.loc[0, "cohen_kappa"] < 1
