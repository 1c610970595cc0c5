"""Reviewer display: window/level on the original values, separate from model input."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from core import pixel_transforms as px


@dataclass(frozen=True)
class DisplayImage:
    """Modality values of a DICOM plus its default window, for interactive windowing."""

    values: np.ndarray
    default_center: float
    default_width: float
    invert: bool
    spacing_mm: tuple[float, float] | None = None  # (row, column) from PixelSpacing / ImagerPixelSpacing

    @property
    def value_range(self) -> tuple[float, float]:
        return float(self.values.min()), float(self.values.max())


def load_dicom_display(data: bytes) -> DisplayImage:
    """Read modality values and the file's default window (or the full range)."""
    from core.dicom_attributes import dicom_default_window, pixel_spacing
    from core.dicom_decode import dicom_modality_values, read_dicom

    ds = read_dicom(data)
    values = dicom_modality_values(ds)
    center, width = dicom_default_window(ds)
    if center is None or width is None:
        lo, hi = float(values.min()), float(values.max())
        center, width = (lo + hi) / 2.0, max(1.0, hi - lo)
    invert = str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"
    return DisplayImage(values, center, width, invert, pixel_spacing(ds))


class ChestPreset(StrEnum):
    """The reader's chest windows. CR/DX values are not calibrated like CT units, so each
    preset is placed on the image's own brightness histogram (percentiles of how bright a
    pixel is shown): the dark, air-filled lung fields; the brighter soft tissue of the
    mediastinum and heart; the brightest, bone."""

    LUNG = "lung"
    MEDIASTINUM = "mediastinum"
    BONE = "bone"


# brightness percentiles (low, high) each preset's window spans
CHEST_PRESET_SPANS: dict[ChestPreset, tuple[float, float]] = {
    ChestPreset.LUNG: (1.0, 70.0),
    ChestPreset.MEDIASTINUM: (45.0, 97.0),
    ChestPreset.BONE: (75.0, 99.7),
}


def chest_presets(image: DisplayImage) -> dict[ChestPreset, tuple[float, float]]:
    """(centre, width) in modality values for each chest preset of this image. Brightness
    percentile q is value percentile q, or 100 - q on MONOCHROME1 (higher values darker)."""
    sample = image.values[:: max(1, image.values.shape[0] // 512), :: max(1, image.values.shape[1] // 512)]
    windows: dict[ChestPreset, tuple[float, float]] = {}
    for preset, (low, high) in CHEST_PRESET_SPANS.items():
        qs = (100.0 - high, 100.0 - low) if image.invert else (low, high)
        lo, hi = (float(v) for v in np.percentile(sample, qs))
        windows[preset] = ((lo + hi) / 2.0, max(1e-6, hi - lo))
    return windows


@dataclass(frozen=True)
class BrowserPixels:
    """An image's display values as the reading screen's viewer receives them: 16-bit
    unsigned integers, little-endian, row by row, deflate-compressed (``DecompressionStream``
    in the browser); ``value = stored * scale + offset`` gives back the modality value, so
    the viewer windows the file's own values, not an 8-bit rendering of them."""

    data: bytes
    rows: int
    cols: int
    offset: float
    scale: float

    def values(self) -> np.ndarray:
        """Decode again (tests, tools): the values the browser windows."""
        stored = np.frombuffer(zlib.decompress(self.data), dtype="<u2").reshape(self.rows, self.cols)
        return stored.astype(np.float64) * self.scale + self.offset


def browser_pixels(values: np.ndarray) -> BrowserPixels:
    """Pack display values into 16 bits: exactly when they are integers spanning at most
    65,536 values (every CR/DX and 8/16-bit raster), else linearly quantised to 65,536 steps."""
    finite = np.asarray(values, dtype=np.float64)
    if finite.ndim != 2 or not np.isfinite(finite).all():
        raise ValueError("display values must be a finite 2-D array")
    lo, hi = float(finite.min()), float(finite.max())
    if np.array_equal(finite, np.round(finite)) and hi - lo <= 65535:
        scale = 1.0
        stored = (finite - lo).astype("<u2")
    else:
        scale = max(hi - lo, 1e-12) / 65535.0
        stored = np.round((finite - lo) / scale).astype("<u2")
    rows, cols = stored.shape
    return BrowserPixels(zlib.compress(stored.tobytes(), 1), rows, cols, lo, scale)


def render_window(image: DisplayImage, center: float, width: float) -> np.ndarray:
    """8-bit display pixels for a chosen window; MONOCHROME1 stays inverted."""
    unit = px.window_linear(image.values, center, max(1.0, width))
    if image.invert:
        unit = px.invert_unit(unit)
    return px.to_uint8(unit)
