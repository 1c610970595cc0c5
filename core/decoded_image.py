"""What every decoder shares: the size limits checked from headers, the decoded image,
and the checks that the pixels leaving any decoder pass (shape, finite, not flat)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ImageTooLarge, ImageTooSmall, NotARadiograph, UnreadableImage

MAX_ASPECT_RATIO = 2.5


@dataclass(frozen=True)
class Limits:
    """Size limits checked from headers, before any pixel is decompressed."""

    max_pixels: int = 50_000_000
    min_side: int = 32


@dataclass
class DecodedImage:
    """Model-ready grey pixels plus non-identifying metadata."""

    pixels: np.ndarray  # float32, HxW, [0, 1], white = dense (bone)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def check_pixels(pixels: np.ndarray) -> None:
    """Refuse what the model must never see: NaN/Inf, or an image of one value."""
    if not np.isfinite(pixels).all():
        raise UnreadableImage(
            "The image holds non-finite pixel values (NaN or infinity): it is corrupt or its "
            "rescale/window attributes are invalid."
        )
    if pixels.size and float(pixels.max()) - float(pixels.min()) <= 0.0:
        raise UnreadableImage("Every pixel of the image has the same value: there is no image to read.")


def check_shape(height: int, width: int, limits: Limits) -> None:
    if height * width > limits.max_pixels:
        raise ImageTooLarge(f"Image is {width}x{height} pixels, above the limit of {limits.max_pixels:,} pixels.")
    if min(height, width) < limits.min_side:
        raise ImageTooSmall(f"Image is {width}x{height} pixels; at least {limits.min_side} pixels a side are needed.")
    if max(height, width) / max(1, min(height, width)) > MAX_ASPECT_RATIO:
        raise NotARadiograph(f"Image is {width}x{height}: too elongated to be a chest radiograph.")
