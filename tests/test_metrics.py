"""Metrics and cohort rules: equal to scikit-learn, CIs that cover, truth rules."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from core import metrics
from core.cohort import (
    Cohort,
    cohen_kappa_by_finding,
    false_positives,
    finding_table,
    truth_from_finding_labels,
    truth_from_votes,
)
from core.labels import LABELS


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
    got = metrics.bootstrap_aucs(y, s, np.arange(len(y)), weights)
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


def test_binned_bootstrap_close_to_exact_for_many_distinct_scores():
    rng = np.random.default_rng(8)
    y, s = _sample(20_000, rng)
    codes, k, _ = metrics.score_bins(s)
    assert k == metrics.MAX_EXACT_BINS
    w = np.ones((1, len(y)))
    binned = metrics.bootstrap_aucs(y, s, np.arange(len(y)), w)[0]
    assert binned == pytest.approx(roc_auc_score(y, s), abs=1e-3)


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


def _votes(rows, n=1, label="Mass"):
    """rows: (study_pos, reviewer_id, present, adjudicator) for one label."""
    j = LABELS.index(label)
    pos = np.array([r[0] for r in rows])
    rev = np.array([r[1] for r in rows])
    present = np.zeros((len(rows), 15), bool)
    present[:, j] = [r[2] for r in rows]
    adj = np.array([r[3] for r in rows])
    return pos, present, n, rev, adj


def _truth(rows, rule="majority", chosen=None):
    pos, present, n, rev, adj = _votes(rows)
    return truth_from_votes(pos, present, n, rule, rev, chosen, adj)[0, LABELS.index("Mass")]


def test_truth_rules_single_and_disagreement():
    assert _truth([(0, 10, True, False)]) == 1.0
    tie = [(0, 10, True, False), (0, 11, False, False)]
    assert np.isnan(_truth(tie))  # a tie without adjudicator stays unknown
    tie_adj = [(0, 10, True, False), (0, 11, False, True)]
    assert _truth(tie_adj) == 0.0  # the adjudicator breaks the tie
    three = [(0, 10, True, False), (0, 11, True, False), (0, 12, False, True)]
    assert _truth(three, "majority") == 1.0  # majority stands over an adjudicator
    assert _truth(three, "adjudicator") == 0.0  # unless the adjudicator rule is chosen
    no_adj = [(0, 10, True, False), (0, 11, True, False), (0, 12, False, False)]
    assert _truth(no_adj, "adjudicator") == 1.0  # no adjudicator: majority
    assert _truth(three, "reviewer", chosen=12) == 0.0
    assert np.isnan(_truth(three, "reviewer", chosen=99))
    with pytest.raises(ValueError):
        _truth(three, "reviewer")
    with pytest.raises(ValueError):
        _truth(three, "coin-toss")


def test_verdict_to_truth_through_review_rules():
    from db.reviews import truth_from_verdict

    cases = {(True, "correct"): True, (True, "incorrect"): False, (False, "correct"): False, (False, "missed"): True}
    for (flagged, verdict), present in cases.items():
        assert truth_from_verdict(flagged, verdict) is present


def test_reference_truth_and_finding_table_equal_sklearn():
    rng = np.random.default_rng(6)
    n = 300
    texts = ["Mass|Effusion" if rng.random() < 0.3 else "No Finding" for _ in range(n)]
    texts[0] = None  # no reference for this study
    truth = truth_from_finding_labels(texts, LABELS)
    assert np.isnan(truth[0]).all() and truth[1:, LABELS.index("No Finding")].sum() > 0
    mass = np.nan_to_num(truth[:, LABELS.index("Mass")])
    probs = np.clip(rng.random((n, 15)) * 0.7 + 0.3 * np.nan_to_num(truth), 0, 1)
    thr = np.full((n, 15), 0.5)
    cohort = Cohort(np.arange(n), probs, thr, truth, np.array([f"p{i // 2}" for i in range(n)]), pd.DataFrame(), LABELS)
    table = finding_table(cohort, n_boot=300).set_index("finding")
    j = LABELS.index("Mass")
    row = table.loc["Mass"]
    assert row["n"] == n - 1
    assert row["auc"] == pytest.approx(roc_auc_score(mass[1:], probs[1:, j]))
    assert row["auc_low"] < row["auc"] < row["auc_high"]
    pred = probs[1:, j] >= 0.5
    assert row["tp"] == int((pred & (mass[1:] > 0)).sum()) and row["fp"] == int((pred & (mass[1:] == 0)).sum())
    assert "Hernia" in table.index and np.isnan(table.loc["Hernia", "auc"])  # no positives: AUC undefined
    fps = false_positives(cohort)
    assert len(fps) == int(((probs >= thr) & (truth == 0)).sum())


def test_kappa_per_finding():
    n = 40
    rng = np.random.default_rng(9)
    a = rng.random((n, 15)) < 0.3
    b = a.copy()
    b[:5, 0] = ~b[:5, 0]
    pos = np.r_[np.arange(n), np.arange(n)]
    rev = np.r_[np.full(n, 1), np.full(n, 2)]
    k = cohen_kappa_by_finding(pos, rev, np.r_[a, b], LABELS).set_index("finding")
    assert k.loc["Atelectasis", "studies_read_twice"] == n
    assert k.loc["Atelectasis", "agreement"] == pytest.approx(35 / 40)
    assert k.loc["Cardiomegaly", "cohen_kappa"] == pytest.approx(1.0)


def test_votes_without_a_label_leave_it_unknown():
    """A verdict set written under another label set has no vote for a label: it neither
    counts as absent nor breaks a tie."""
    present = np.array([[True, False], [False, False]])
    known = np.array([[True, True], [True, False]])
    truth = truth_from_votes(np.array([0, 0]), present, 1, "majority", known=known)
    assert np.isnan(truth[0, 0])  # one present, one absent: a tie without an adjudicator
    assert truth[0, 1] == 0.0  # only the first reviewer judged it: absent


def test_roc_band_brackets_the_curve_and_narrows_with_more_data():
    from core.metrics import roc_band, roc_points

    rng = np.random.default_rng(4)
    widths = []
    for n in (100, 2000):
        y = rng.random(n) < 0.3
        s = np.clip(rng.normal(0.4 + 0.3 * y, 0.2), 0, 1)
        grid, low, high = roc_band(y, s, n_boot=200)
        assert ((0 <= low) & (low <= high + 1e-12) & (high <= 1)).all()
        fpr, tpr, _ = roc_points(y, s)
        inside = (np.interp(grid, fpr, tpr) >= low - 0.02) & (np.interp(grid, fpr, tpr) <= high + 0.02)
        assert inside.mean() > 0.9
        widths.append(float(np.mean(high - low)))
    assert widths[1] < widths[0] / 2  # 20 times the data: a much narrower band
    assert np.isnan(roc_band(np.ones(10, bool), np.arange(10) / 10)[1]).all()  # one class: no band


def test_false_positive_studies_list_each_studys_wrong_findings_and_age_band():
    """The per-study table against the plain per-row construction, on a random cohort with
    missing truth and ages."""
    from core.cohort import Cohort, age_band, false_positive_studies, false_positives

    rng = np.random.default_rng(5)
    n = 400
    truth = (rng.random((n, len(LABELS))) < 0.2).astype(float)
    truth[rng.random((n, len(LABELS))) < 0.1] = np.nan
    ages = pd.Series(rng.integers(0, 100, n).astype(float))
    ages[rng.random(n) < 0.1] = np.nan
    meta = pd.DataFrame(
        {"id": np.arange(10, 10 + n), "patient_age": ages, "original_name": [f"s{i}" for i in range(n)]}
    )
    cohort = Cohort(
        np.arange(10, 10 + n),
        rng.random((n, len(LABELS))),
        np.full((n, len(LABELS)), 0.7),
        truth,
        np.array([f"p{i}" for i in range(n)]),
        meta,
        LABELS,
    )
    fps = false_positives(cohort)
    table = false_positive_studies(cohort, fps, cohort.meta)
    expected = fps.sort_values("label").groupby("study_id")["label"].agg(", ".join)
    assert sorted(table.index) == sorted(expected.index)
    assert (table.loc[expected.index, "false-positive findings"] == expected).all()
    assert (table["age band"] == table["patient_age"].map(age_band)).all()
    assert "unknown" in set(table["age band"])
    empty = false_positive_studies(cohort, fps.iloc[:0], cohort.meta)
    assert empty.empty and {"false-positive findings", "age band"} <= set(empty.columns)


def test_poisson_counts_switch_exactly_at_the_cdf_boundaries():
    upper = metrics._POISSON_UPPER.astype(np.int64)
    below = metrics.poisson_one_counts((upper - 1).astype(np.uint32))
    at = metrics.poisson_one_counts(upper.astype(np.uint32))
    assert below.tolist() == list(range(len(upper)))
    assert at.tolist() == list(range(1, len(upper) + 1))
    u = np.random.default_rng(1).integers(0, 2**32, size=200_000, dtype=np.uint32)
    assert np.array_equal(metrics.poisson_one_counts(u), np.searchsorted(metrics._POISSON_UPPER, u, side="right"))


def test_poisson_draws_follow_the_poisson_one_distribution():
    from scipy import stats

    counts = metrics.poisson_one(np.random.default_rng(0), (400_000,))
    observed = np.bincount(counts, minlength=6)[:6]
    expected = stats.poisson.pmf(np.arange(6), 1.0) * counts.size
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 0.001
    assert abs(counts.mean() - 1.0) < 0.01 and abs(counts.var() - 1.0) < 0.02


def test_a_thinned_curve_keeps_its_ends_and_stays_within_a_step_of_every_point():
    rng = np.random.default_rng(4)
    y = rng.random(100_000) < 0.15
    s = rng.normal(0.6 * y, 1.0)
    fpr, tpr, _ = metrics.roc_points(y, s)
    tx, ty = metrics.thin_curve(fpr, tpr, 1e-3)
    assert len(tx) < 3000 < len(fpr)
    assert (tx[0], ty[0], tx[-1], ty[-1]) == (fpr[0], tpr[0], fpr[-1], tpr[-1])
    # every dropped point lies in the step-sized cell of a kept point before it
    kept = np.searchsorted(tx, fpr, side="right") - 1
    assert np.all(np.abs(fpr - tx[kept]) <= 1e-3 + 1e-12)
    assert metrics.thin_curve(np.array([0.0, 1.0]), np.array([0.0, 1.0]))[0].tolist() == [0.0, 1.0]
