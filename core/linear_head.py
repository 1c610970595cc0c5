"""A model's head as numbers: one dense layer over the trunk's pooled features, then the
card's per-label Platt scaling. A candidate retrained on the site's reads differs from its
parent only here, so both can be scored on the features the worker kept, without the
trunk: for the paired comparison, for shadow runs and for the held-out reference images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.calibration import Platt, sigmoid


@dataclass(frozen=True)
class LinearHead:
    kernel: np.ndarray  # (K, L)
    bias: np.ndarray  # (L,)
    calibration: Mapping[str, Mapping[str, float]]  # label -> Platt parameters
    labels: Sequence[str]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, K) pooled features -> (N, L) calibrated probabilities."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.kernel.shape[0]:
            raise ValueError(f"features of shape {x.shape} do not fit a head over {self.kernel.shape[0]} features")
        probs = sigmoid(x @ self.kernel + self.bias)
        for j, label in enumerate(self.labels):
            if label in self.calibration:
                probs[:, j] = Platt(**self.calibration[label]).apply(probs[:, j])
        return probs


def per_study_max(probs: np.ndarray, study_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A study's probability of a label is the maximum over its images (as the worker
    combines them): (rows in first-seen study order, those study keys)."""
    keys, first, inverse = np.unique(np.asarray(study_keys), return_index=True, return_inverse=True)
    per_study = np.full((len(keys), probs.shape[1]), -np.inf)
    np.maximum.at(per_study, inverse, probs)
    order = np.argsort(first)
    return per_study[order], keys[order]
