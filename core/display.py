"""Reviewer display: window/level on the original values, separate from model input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import pixel_transforms as px

# CR/DX values are not calibrated like CT Hounsfield units, so fixed-number presets would
# mean different things on every detector. Presets are defined on the image's own values:
# the file's window, the full range, the 1st-99th percentiles (ignores collimator edges
# and markers), and a narrow window around the median for subtle density differences.
WINDOW_PRESETS: tuple[str, ...] = ("Default", "Full range", "Auto 1-99%", "Narrow")


def preset_window(values: np.ndarray, preset: str, default: tuple[float, float]) -> tuple[float, float]:
    """(centre, width) for a preset name on these modality values."""
    if preset == "Default":
        return default
    if preset == "Full range":
        lo, hi = float(values.min()), float(values.max())
    elif preset == "Auto 1-99%":
        lo, hi = (float(v) for v in np.percentile(values, [1, 99]))
    elif preset == "Narrow":
        q25, q50, q75 = (float(v) for v in np.percentile(values, [25, 50, 75]))
        return q50, max(1.0, q75 - q25)
    else:
        raise ValueError(f"unknown window preset {preset!r}")
    return (lo + hi) / 2.0, max(1.0, hi - lo)


@dataclass(frozen=True)
class DisplayImage:
    """Modality values of a DICOM plus its default window, for interactive windowing."""

    values: np.ndarray
    default_center: float
    default_width: float
    invert: bool

    @property
    def value_range(self) -> tuple[float, float]:
        return float(self.values.min()), float(self.values.max())


def load_dicom_display(data: bytes) -> DisplayImage:
    """Read modality values and the file's default window (or the full range)."""
    from core.decode import dicom_default_window, dicom_modality_values, read_dicom

    ds = read_dicom(data)
    values = dicom_modality_values(ds)
    center, width = dicom_default_window(ds)
    if center is None or width is None:
        lo, hi = float(values.min()), float(values.max())
        center, width = (lo + hi) / 2.0, max(1.0, hi - lo)
    invert = str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"
    return DisplayImage(values=values, default_center=center, default_width=width, invert=invert)


def render_window(image: DisplayImage, center: float, width: float) -> np.ndarray:
    """8-bit display pixels for a chosen window; MONOCHROME1 stays inverted."""
    unit = px.window_linear(image.values, center, max(1.0, width))
    if image.invert:
        unit = px.invert_unit(unit)
    return px.to_uint8(unit)
