"""A linear probe on the frozen trunk's pooled features: the regularisation chosen on
validation patients, the head's first weights when the trunk is frozen."""

from __future__ import annotations

import numpy as np

from core.labels import LABELS, NO_FINDING
from training.images import to_model_input


def mean_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mean AUC over the findings (not No Finding) that have both classes."""
    from core.metrics import auc

    values = [auc(y[:, j], p[:, j]) for j in range(y.shape[1]) if LABELS[j] != NO_FINDING]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


PROBE_C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01)


def pooled_features(model, backbone_name: str, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """GAP of the trunk's last block for uint8 images (N, S, S), no augmentation."""
    import keras

    backbone = model.get_layer(backbone_name)
    pool = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    out = [pool.predict(to_model_input(x[i : i + batch_size]), verbose=0) for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


def fit_probe(features: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-label L2 logistic regression on standardised features, folded back into the
    raw features' (kernel (C, L), bias (L,)) so it drops into the Dense head exactly."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = features.mean(axis=0), features.std(axis=0) + 1e-6
    z = (features - mu) / sd
    kernel = np.zeros((features.shape[1], y.shape[1]))
    bias = np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        if y[:, j].min() == y[:, j].max():  # a label absent from training: a constant low logit
            bias[j] = -6.0
            continue
        lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(z, y[:, j])
        kernel[:, j] = lr.coef_[0] / sd
        bias[j] = lr.intercept_[0] - float(np.sum(lr.coef_[0] * mu / sd))
    return kernel.astype(np.float32), bias.astype(np.float32)


def choose_probe_c(
    features: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5, grid: tuple[float, ...] = PROBE_C_GRID
) -> tuple[float, dict]:
    """The L2 strength with the best mean AUC over findings in patient-grouped CV of the
    training patients (validation and test patients are not touched)."""
    from sklearn.model_selection import GroupKFold

    scores = {}
    for c in grid:
        oof = np.zeros_like(y, dtype=np.float64)
        for tr, te in GroupKFold(folds).split(features, y, groups):
            kernel, bias = fit_probe(features[tr], y[tr], c)
            oof[te] = features[te] @ kernel + bias
        scores[c] = round(mean_auc(y, oof), 4)
    best = max(scores, key=lambda c: scores[c])
    return best, scores
