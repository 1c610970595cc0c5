"""Packing of the 15 per-label values into compact columns (label order of core.labels)."""
from __future__ import annotations

import numpy as np

from core.labels import LABELS


def pack_floats(values: dict[str, float]) -> bytes:
    return np.array([values[lab] for lab in LABELS], dtype="<f4").tobytes()


def unpack_floats(blobs: list[bytes]) -> np.ndarray:
    """(n, 15) float32 from n packed rows."""
    if not blobs:
        return np.zeros((0, len(LABELS)), np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), len(LABELS))


def mask_of(present: dict[str, bool]) -> int:
    return sum(1 << j for j, lab in enumerate(LABELS) if present[lab])


def unmask(masks: np.ndarray) -> np.ndarray:
    """(n, 15) bool from n bit masks."""
    bits = np.arange(len(LABELS), dtype=np.int64)
    return ((np.asarray(masks, dtype=np.int64)[:, None] >> bits) & 1).astype(bool)
