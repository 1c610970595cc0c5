"""Reviewer display: window/level on the original values, separate from model input."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import pixel_transforms as px

# Common chest presets in modality units for 12-bit CR/DX; 'Default' uses the file's own.
WINDOW_PRESETS: dict[str, tuple[float, float] | None] = {
    "Default": None,
    "Lung": (-600.0, 1500.0),
    "Mediastinum": (50.0, 350.0),
    "Bone": (400.0, 1800.0),
}


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
