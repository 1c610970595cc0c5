"""The dense head inside a model folder's Keras weights file, read and rewritten with h5py:
a refitted head is a new weights file that differs from its parent's in two arrays only,
written without loading TensorFlow (seconds, not minutes, for a retraining job)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

HEAD_GROUP = "layers/dense/vars"  # keras 3 names the one Dense layer's variables 0 (kernel), 1 (bias)


def read_head(weights: Path, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (K, L), bias (L,)) of the head; anything else in that place is an error."""
    with h5py.File(weights, "r") as fh:
        kernel, bias = np.array(fh[f"{HEAD_GROUP}/0"]), np.array(fh[f"{HEAD_GROUP}/1"])
    if kernel.ndim != 2 or kernel.shape[1] != n_labels or bias.shape != (n_labels,):
        raise ValueError(f"{weights.name}: no {n_labels}-label dense head at {HEAD_GROUP}")
    return kernel, bias


def write_head(parent: Path, out: Path, kernel: np.ndarray, bias: np.ndarray) -> None:
    """``out`` = ``parent`` with the head replaced (shapes and dtypes checked)."""
    old_kernel, old_bias = read_head(parent, len(bias))
    if kernel.shape != old_kernel.shape or bias.shape != old_bias.shape:
        raise ValueError(f"a head of shape {kernel.shape} does not fit {old_kernel.shape}")
    shutil.copyfile(parent, out)
    with h5py.File(out, "r+") as fh:
        fh[f"{HEAD_GROUP}/0"][...] = kernel.astype(fh[f"{HEAD_GROUP}/0"].dtype)
        fh[f"{HEAD_GROUP}/1"][...] = bias.astype(fh[f"{HEAD_GROUP}/1"].dtype)
