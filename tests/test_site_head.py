"""Refitting the head on the site's reads: a label the site teaches is refitted and better
on held-out site patients; a label with too few positives, or one the refit does not
improve, keeps the parent's column; the result is still one dense layer."""

import numpy as np

from training.site_head import fit_site_head

LABELS = ("Effusion", "Mass", "Hernia")


def _site(n, rng, shift):
    """Features where the site's Effusion depends on a direction the parent ignores."""
    x = rng.normal(size=(n, 32))
    y = np.zeros((n, 3), int)
    y[:, 0] = (x[:, 0] + 0.5 * rng.normal(size=n) > 0.8).astype(int)
    y[:, 1] = (x[:, 1] + rng.normal(size=n) > 1.0).astype(int)
    y[: int(n * 0.01), 2] = 1  # Hernia: a handful of positives
    return x + shift, y


def test_refit_where_the_site_teaches_kept_elsewhere_and_one_dense_layer():
    rng = np.random.default_rng(0)
    parent_kernel = np.zeros((32, 3))
    parent_kernel[1, 1] = 1.0  # the parent knows Mass, not the site's Effusion
    parent_bias = np.zeros(3)
    train, val, test = (_site(n, rng, 0.0) for n in (600, 300, 300))
    head = fit_site_head(LABELS, parent_kernel, parent_bias, train, val)
    fits = {f.label: f for f in head.fits}
    assert fits["Effusion"].action == "refit" and fits["Effusion"].validation_auc_new > 0.85
    assert fits["Hernia"].action == "kept" and "positives" in fits["Hernia"].reason
    assert np.array_equal(head.kernel[:, 2], parent_kernel[:, 2].astype(np.float32))
    from sklearn.metrics import roc_auc_score

    x_te, y_te = test
    new = x_te @ head.kernel + head.bias
    old = x_te @ parent_kernel + parent_bias
    assert roc_auc_score(y_te[:, 0], new[:, 0]) > roc_auc_score(y_te[:, 0], old[:, 0]) + 0.2
    assert roc_auc_score(y_te[:, 1], new[:, 1]) > 0.7  # Mass still works, refitted or kept
    assert set(head.thresholds) == set(LABELS) and all(0 <= t <= 1 for t in head.thresholds.values())


def test_shuffled_site_labels_never_replace_a_good_parent_column():
    rng = np.random.default_rng(1)
    x, y = _site(1200, rng, 0.0)
    parent_kernel = np.zeros((32, 3))
    parent_kernel[0, 0], parent_kernel[1, 1] = 2.0, 1.0
    shuffled = rng.permutation(y[:600])
    head = fit_site_head(LABELS, parent_kernel, np.zeros(3), (x[:600], shuffled), (x[600:900], y[600:900]))
    fits = {f.label: f for f in head.fits}
    assert fits["Effusion"].action == "kept" and fits["Mass"].action == "kept"
