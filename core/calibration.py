"""Per-label Platt scaling, expected calibration error and reliability bins.

Training oversamples rare findings and uses a focal loss, so the network's raw sigmoid
outputs are not frequencies: a raw 0.4 for Hernia may mean 1 in 100. Platt scaling,
``p = sigmoid(slope * logit(raw) + intercept)``, fitted per label on the validation
patients, maps them back to observed rates (the intercept undoes the sampling prior,
the slope the over-confidence). It is monotone with a positive slope, so AUCs are
unchanged and only thresholds and displayed percentages move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import metrics

EPS = 1e-6
MIN_SLOPE = 0.05  # a fitted slope at or below zero would invert the ranking: keep it monotone


@dataclass(frozen=True)
class Platt:
    slope: float = 1.0
    intercept: float = 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * logit(p) + self.intercept)

    def to_dict(self) -> dict[str, float]:
        return {"slope": round(self.slope, 6), "intercept": round(self.intercept, 6)}


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_platt(y: np.ndarray, p: np.ndarray, c: float = 1.0) -> Platt:
    """L2-regularised logistic regression of y on logit(p) (scikit-learn).

    With few positives the penalty pulls the slope toward 0 and the output toward the
    observed rate, which is the honest answer for a label the data cannot resolve. A
    single-class input keeps the identity map (nothing to fit).
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(int)
    if y.min() == y.max():
        return Platt()
    x = logit(p)[:, None]
    model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if slope < MIN_SLOPE:  # keep the ranking; refit the intercept alone at the floor slope
        slope = MIN_SLOPE
        offset = LogisticRegression(C=c, max_iter=1000, fit_intercept=True)
        offset.fit(np.zeros_like(x), y)
        intercept = float(offset.intercept_[0]) - slope * float(np.mean(x))
    return Platt(slope, intercept)


def reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Equal-width bins over [0, 1] of every (image, label) pair: count, mean predicted,
    observed positive rate (from :func:`core.metrics.expected_calibration_error`)."""
    _, table = metrics.expected_calibration_error(np.ravel(y), np.ravel(p), n_bins)
    return [
        {
            "low": float(lo),
            "high": float(hi),
            "n": int(n),
            "mean_predicted": float(mp) if n else None,
            "observed": float(fp) if n else None,
        }
        for lo, hi, n, mp, fp in zip(
            table["bin_low"],
            table["bin_high"],
            table["count"],
            table["mean_predicted"],
            table["fraction_positive"],
            strict=True,
        )
    ]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE over every (image, label) pair."""
    return metrics.expected_calibration_error(np.ravel(y), np.ravel(p), n_bins)[0]
