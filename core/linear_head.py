"""A model's head as numbers: one dense layer over the trunk's pooled features, then the
card's per-label Platt scaling. A candidate retrained on the site's reads differs from its
parent only here, so both can be scored on the features the worker kept, without the
trunk: for the paired comparison, for shadow runs and for the held-out reference images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from core.calibration import Platt, sigmoid

HEAD_GROUP = "layers/dense/vars"  # keras 3 names the one Dense layer's variables 0 (kernel), 1 (bias)


def read_head(weights: Path, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (K, L), bias (L,)) of the head in a Keras weights file, read with h5py (no
    TensorFlow); anything else in that place is an error."""
    with h5py.File(weights, "r") as fh:
        kernel, bias = np.array(fh[f"{HEAD_GROUP}/0"]), np.array(fh[f"{HEAD_GROUP}/1"])
    if kernel.ndim != 2 or kernel.shape[1] != n_labels or bias.shape != (n_labels,):
        raise ValueError(f"{Path(weights).name}: no {n_labels}-label dense head at {HEAD_GROUP}")
    return kernel, bias


def cams_from_head(activations: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Grad-CAM of every label for a pooled dense head, without a gradient.

    With logit_l = sum_k w_kl mean_ij A_ij^k + b_l, the gradient of logit_l by A_ij^k is
    w_kl / (h w) everywhere, so Grad-CAM's weights are the head's column over the map size
    and the maps are one matrix product: relu(sum_k A^k w_kl / (h w)), divided by each map's
    peak (a map with no positive value stays zero). (B, h, w, K) -> (B, L, h, w) float32.
    """
    a = np.asarray(activations, dtype=np.float32)
    h, w = a.shape[1:3]
    cams = np.maximum(np.einsum("bhwk,kl->blhw", a, np.asarray(kernel, np.float32) / np.float32(h * w)), 0.0)
    peak = cams.max(axis=(2, 3), keepdims=True)
    return np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)


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
