"""Comparing two models on the same images: DeLong's paired test against its definition,
and a patient bootstrap interval that covers the true difference."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.paired import delong_paired, mean_auc_difference, paired_auc


def _delong_by_definition(y, a, b):
    """DeLong's structural components written out pair by pair (O(m n)), for checking."""
    pos, neg = y.astype(bool), ~y.astype(bool)

    def psi(x, z):
        return (x > z) + 0.5 * (x == z)

    comps = []
    for s in (a, b):
        kernel = psi(s[pos][:, None], s[neg][None, :]).astype(float)
        comps.append((kernel.mean(axis=1), kernel.mean(axis=0)))
    v10 = np.vstack([c[0] for c in comps])
    v01 = np.vstack([c[1] for c in comps])
    cov = np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()
    return cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]


def test_delong_matches_its_definition_and_sklearn():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    a = y * 0.6 + rng.normal(size=300)
    b = y * 1.0 + rng.normal(size=300)
    b[::10] = np.round(b[::10], 1)  # ties
    auc_a, auc_b, var, p = delong_paired(y, a, b)
    assert auc_a == pytest.approx(roc_auc_score(y, a)) and auc_b == pytest.approx(roc_auc_score(y, b))
    assert var == pytest.approx(_delong_by_definition(y, a, b), rel=1e-9)
    assert 0 <= p < 0.05  # b is truly better here
    same = delong_paired(y, a, a.copy())
    assert same[1] - same[0] == 0 and same[3] == 1.0


def test_shuffled_scores_are_worse_with_a_small_p_and_intervals_cover_the_truth():
    rng = np.random.default_rng(7)
    n = 2000
    groups = np.repeat(np.arange(n // 2), 2)  # two images per patient
    truth = rng.random((n, 3)) < 0.25
    a = truth * 1.2 + rng.normal(size=(n, 3))
    shuffled = rng.permutation(a)
    r = paired_auc(truth[:, 0], a[:, 0], shuffled[:, 0], groups, n_boot=400)
    assert r.difference < -0.15 and r.ci_high < 0 and r.p_value < 1e-6
    noise = a + rng.normal(scale=0.05, size=a.shape)  # practically the same model
    m = mean_auc_difference(truth, a, noise, ("x", "y", "z"), groups, n_boot=400)
    assert m.ci_low < 0 < m.ci_high and abs(m.difference) < 0.01


def test_a_finding_without_positives_is_left_out_of_the_mean():
    rng = np.random.default_rng(1)
    truth = np.zeros((200, 2), bool)
    truth[:50, 0] = True
    s = rng.random((200, 2))
    m = mean_auc_difference(truth, s, s, ("Mass", "Hernia"), n_boot=50)
    assert m.labels == ("Mass",)
    with pytest.raises(ValueError):
        delong_paired(np.zeros(10, bool), s[:10, 0], s[:10, 1])
