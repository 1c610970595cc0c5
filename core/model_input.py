"""From a decoded image to what a trunk reads, in NumPy: the card's resize, the TTA views
and the input scale. The TensorFlow analyzer does the same steps inside its traced graph;
the CPU runtime (core.onnx_analyzer) does them here, and a test holds the two equal."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from core.model_card import InputSpec
from core.tta import View


def prepare(pixels: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    """[0, 1] grey image at any size -> (size, size) float32, resized as the card says
    ("area": area-averaged when shrinking, bilinear when enlarging; "linear": bilinear)."""
    if pixels.ndim != 2:
        raise ValueError("expected a 2-D grey image")
    h, w = pixels.shape
    shrinking = h > size or w > size
    interp = cv2.INTER_AREA if interpolation == "area" and shrinking else cv2.INTER_LINEAR
    return cv2.resize(pixels.astype(np.float32), (size, size), interpolation=interp)


def view_of(grey: np.ndarray, view: View) -> np.ndarray:
    """One TTA view of a (S, S) image: the view's output-to-input affine map, bilinear, the
    edge pixel repeated outside (as ImageProjectiveTransformV3 with fill NEAREST), clipped to
    [0, 1], then the view's gamma."""
    size = grey.shape[0]
    t = view.transform(size).astype(np.float64)
    if view.angle_deg or view.scale != 1.0 or view.shift_x or view.shift_y:
        # the transform maps output (x, y) to input (x', y'); ndimage indexes (row, col)
        matrix = np.array([[t[4], t[3]], [t[1], t[0]]])
        warped = ndimage.affine_transform(
            grey.astype(np.float64), matrix, offset=(t[5], t[2]), order=1, mode="nearest", prefilter=False
        )
    else:
        warped = grey.astype(np.float64)
    out = np.clip(warped, 0.0, 1.0)
    return (out**view.gamma if view.gamma != 1.0 else out).astype(np.float32)


def model_input(grey_views: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(N, S, S) in [0, 1] -> (N, S, S, C) at the card's scale (x255, 3 channels for EfficientNet)."""
    scaled = grey_views.astype(np.float32) * np.float32(spec.scale)
    return np.repeat(scaled[..., None], spec.channels, axis=-1)
