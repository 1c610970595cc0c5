"""The out-of-domain gate: is this image something the model has learnt to read?

A classifier answers for any input, photographs and CT slices included, and its
probabilities look no less confident there. The gate measures how far an image's pooled
backbone features lie from those of the training radiographs: the Mahalanobis distance
in the principal subspace of the training features (PCA whitening; a full 1280-d
covariance from ~1,000 images would be singular), plus the residual outside that
subspace, scaled by its average training value. The threshold is set on the validation
patients (a high percentile times a margin), never on the images it is later judged on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

STATS_FILE = "domain_stats.npz"


@dataclass(frozen=True)
class DomainGate:
    mean: np.ndarray         # (C,)
    components: np.ndarray   # (k, C) principal axes of the training features
    variances: np.ndarray    # (k,) variance along each axis
    residual_scale: float    # mean squared residual outside the subspace, training images
    threshold: float         # scores above this are outside the domain

    def score(self, features: np.ndarray) -> np.ndarray:
        """Distance per row of ``features`` (N, C): sqrt(mean whitened² + residual²/scale)."""
        f = np.asarray(features, dtype=np.float64) - self.mean
        proj = f @ self.components.T
        inside = np.mean(proj ** 2 / self.variances, axis=1)
        residual = np.sum(f ** 2, axis=1) - np.sum(proj ** 2, axis=1)
        return np.sqrt(inside + np.maximum(residual, 0.0) / self.residual_scale)

    def in_domain(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) <= self.threshold

    def save(self, folder: Path) -> Path:
        path = Path(folder) / STATS_FILE
        np.savez(path, mean=self.mean.astype(np.float32), components=self.components.astype(np.float32),
                 variances=self.variances.astype(np.float32),
                 residual_scale=np.float64(self.residual_scale), threshold=np.float64(self.threshold))
        return path

    @classmethod
    def load(cls, path: Path) -> DomainGate:
        with np.load(path, allow_pickle=False) as data:
            return cls(mean=data["mean"].astype(np.float64), components=data["components"].astype(np.float64),
                       variances=data["variances"].astype(np.float64),
                       residual_scale=float(data["residual_scale"]), threshold=float(data["threshold"]))


def fit_gate(train_features: np.ndarray, val_features: np.ndarray, n_components: int = 64,
             percentile: float = 99.5, margin: float = 1.25) -> DomainGate:
    """PCA of the training features; threshold = margin x the validation percentile."""
    x = np.asarray(train_features, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    k = int(min(n_components, max(1, len(x) // 4), x.shape[1]))  # leave most images to estimate the residual
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:k]
    variances = np.maximum((s[:k] ** 2) / (len(x) - 1), 1e-12)
    proj = centred @ components.T
    residual = np.sum(centred ** 2, axis=1) - np.sum(proj ** 2, axis=1)
    residual_scale = float(max(np.mean(residual), 1e-12))
    gate = DomainGate(mean, components, variances, residual_scale, threshold=np.inf)
    val_scores = gate.score(val_features)
    threshold = float(np.percentile(val_scores, percentile) * margin)
    return DomainGate(mean, components, variances, residual_scale, threshold)
