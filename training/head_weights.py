"""The dense head inside a model folder's Keras weights file, read and rewritten with h5py:
a refitted head is a new weights file that differs from its parent's in two arrays only,
written without loading TensorFlow (seconds, not minutes, for a retraining job)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

from core.linear_head import HEAD_GROUP, read_head

__all__ = ["HEAD_GROUP", "read_head", "write_head"]


def write_head(parent: Path, out: Path, kernel: np.ndarray, bias: np.ndarray) -> None:
    """``out`` = ``parent`` with the head replaced (shapes and dtypes checked)."""
    old_kernel, old_bias = read_head(parent, len(bias))
    if kernel.shape != old_kernel.shape or bias.shape != old_bias.shape:
        raise ValueError(f"a head of shape {kernel.shape} does not fit {old_kernel.shape}")
    shutil.copyfile(parent, out)
    with h5py.File(out, "r+") as fh:
        fh[f"{HEAD_GROUP}/0"][...] = kernel.astype(fh[f"{HEAD_GROUP}/0"].dtype)
        fh[f"{HEAD_GROUP}/1"][...] = bias.astype(fh[f"{HEAD_GROUP}/1"].dtype)
