"""The out-of-domain gate: is this image something the model has learnt to read?

A classifier answers for any input, photographs and CT slices included, and its
probabilities look no less confident there. The gate measures how far an image's pooled
backbone features lie from those of the training radiographs: the cosine distance to
its k-th nearest training image (deep nearest neighbours, Sun et al., ICML 2022), which
needs no distributional assumption and no covariance of 1,280 features estimated from
a few hundred images. The threshold is set on the validation patients (a margin above
the largest validation distance), never on the images it is later judged on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

STATS_FILE = "domain_stats.npz"
METHOD = (
    "cosine distance of the pooled last-block features (identity view) to the k-th nearest of the training "
    "images' features (k = {k}); threshold = {margin} x the largest distance among the validation images"
)


def _unit(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class DomainGate:
    reference: np.ndarray  # (N, C) unit-length training features
    k: int
    threshold: float  # scores above this are outside the domain

    def score(self, features: np.ndarray) -> np.ndarray:
        """Cosine distance (0 = identical direction, up to 2) to the k-th nearest reference."""
        sims = _unit(features) @ self.reference.T
        k = min(self.k, self.reference.shape[0])
        kth = np.partition(sims, -k, axis=1)[:, -k]
        return (1.0 - kth).astype(np.float64)

    def in_domain(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) <= self.threshold

    def save(self, folder: Path) -> Path:
        path = Path(folder) / STATS_FILE
        np.savez_compressed(
            path, reference=self.reference.astype(np.float16), k=np.int64(self.k), threshold=np.float64(self.threshold)
        )
        return path

    @classmethod
    def load(cls, path: Path) -> DomainGate:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                reference=_unit(data["reference"].astype(np.float32)),
                k=int(data["k"]),
                threshold=float(data["threshold"]),
            )


def fit_gate(train_features: np.ndarray, val_features: np.ndarray, k: int = 5, margin: float = 1.1) -> DomainGate:
    """Reference = the training features; threshold = margin x the largest validation distance."""
    reference = _unit(train_features)
    gate = DomainGate(reference, k, threshold=np.inf)
    threshold = float(np.max(gate.score(val_features)) * margin)
    return DomainGate(reference, k, threshold)
