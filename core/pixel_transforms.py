"""Pure, checked pixel transforms for radiographs (DICOM PS3.3 C.11).

Each function takes an array and plain numbers and returns a new array; none reads a
dataset, so each can be tested against the standard's formulas on its own.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


def window_linear(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map stored values to [0, 1] with the DICOM 'LINEAR' window (PS3.3 C.11.2.1.2.1).

    The standard's formula uses ``center - 0.5`` and ``width - 1`` so that a window of
    width 1 is a hard threshold; we keep it exactly so windows match other viewers.
    """
    if width < 1:
        raise ValueError(f"window width must be >= 1, got {width}")
    x = np.asarray(values, dtype=np.float64)
    if width == 1:
        return (x >= center - 0.5).astype(np.float32)
    out = ((x - (center - 0.5)) / (width - 1.0)) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def window_linear_exact(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The 'LINEAR_EXACT' window (PS3.3 C.11.2.1.3.2): no half-pixel offsets."""
    if width <= 0:
        raise ValueError(f"window width must be > 0, got {width}")
    x = np.asarray(values, dtype=np.float64)
    out = (x - center) / width + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def window_sigmoid(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The 'SIGMOID' window (PS3.3 C.11.2.1.3.1)."""
    if width <= 0:
        raise ValueError(f"window width must be > 0, got {width}")
    x = np.asarray(values, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))).astype(np.float32)


class WindowFunction(StrEnum):
    """The defined terms of VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"

    @classmethod
    def named(cls, value: str | None) -> WindowFunction:
        """The function a header names (absent or empty: LINEAR, the standard's default);
        ValueError for a name the standard does not define: its pixels would be guessed."""
        text = (value or "").strip().upper() or cls.LINEAR.value
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown VOI LUT Function {text[:32]!r}: not one of {[f.value for f in cls]}") from None


WINDOW_FUNCTIONS = {
    WindowFunction.LINEAR: window_linear,
    WindowFunction.LINEAR_EXACT: window_linear_exact,
    WindowFunction.SIGMOID: window_sigmoid,
}


def apply_window(
    values: np.ndarray, center: float, width: float, function: WindowFunction = WindowFunction.LINEAR
) -> np.ndarray:
    """Window ``values`` with the VOI LUT Function the header names (see WindowFunction.named)."""
    return WINDOW_FUNCTIONS[function](values, center, width)


def rescale_to_unit(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Linear map of [low, high] (default: the array's range) to [0, 1].

    Used where no window is given: the full range of the modality values is shown.
    A constant image maps to zeros rather than dividing by zero.
    """
    x = np.asarray(values, dtype=np.float64)
    lo = float(np.min(x)) if low is None else float(low)
    hi = float(np.max(x)) if high is None else float(high)
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def invert_unit(values: np.ndarray) -> np.ndarray:
    """MONOCHROME1 shows low values as white: invert a [0, 1] image."""
    x = np.asarray(values, dtype=np.float32)
    if x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError("invert_unit expects values in [0, 1]")
    return (1.0 - x).astype(np.float32)


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] image for display or PNG storage."""
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
