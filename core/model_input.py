"""From a decoded image to what a trunk reads, in NumPy: the card's resize, the TTA views
and the input scale. The TensorFlow analyzer does the same steps inside its traced graph;
the CPU runtime (core.onnx_analyzer) does them here, and a test holds the two equal."""

from __future__ import annotations

import functools

import cv2
import numpy as np

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


@functools.lru_cache(maxsize=64)
def _bilinear_taps(view: View, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel of a view samples a (size, size) image: the flat indices of
    its four neighbours (4, size*size) and their bilinear weights (4, size*size), with the
    edge pixel repeated outside the image. Depends only on the view and the size, so it is
    computed once and every image after that is four gathers."""
    t = view.transform(size).astype(np.float64)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    # the transform maps output (x, y) to input (x', y'); here in (row, col) order
    r = (t[4] * rows + t[3] * cols + t[5]).ravel()
    c = (t[1] * rows + t[0] * cols + t[2]).ravel()
    r0, c0 = np.floor(r), np.floor(c)
    fr, fc = r - r0, c - c0
    r_lo, r_hi = (np.clip(r0 + k, 0, size - 1).astype(np.intp) for k in (0, 1))
    c_lo, c_hi = (np.clip(c0 + k, 0, size - 1).astype(np.intp) for k in (0, 1))
    index = np.stack([r_lo * size + c_lo, r_lo * size + c_hi, r_hi * size + c_lo, r_hi * size + c_hi])
    weight = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
    return index, weight


def view_of(grey: np.ndarray, view: View) -> np.ndarray:
    """One TTA view of a (S, S) image: the view's output-to-input affine map, bilinear, the
    edge pixel repeated outside (as ImageProjectiveTransformV3 with fill NEAREST), clipped to
    [0, 1], then the view's gamma. Equal to scipy.ndimage.affine_transform (order 1, mode
    "nearest") to float64 rounding, five times faster from its cached taps."""
    size = grey.shape[0]
    if view.angle_deg or view.scale != 1.0 or view.shift_x or view.shift_y:
        index, weight = _bilinear_taps(view, size)
        flat = grey.astype(np.float64).ravel()
        warped = np.einsum("kn,kn->n", flat[index], weight).reshape(size, size)
    else:
        warped = grey.astype(np.float64)
    out = np.clip(warped, 0.0, 1.0)
    return (out**view.gamma if view.gamma != 1.0 else out).astype(np.float32)


def model_input(grey_views: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(N, S, S) in [0, 1] -> (N, S, S, C) at the card's scale (x255, 3 channels for EfficientNet)."""
    scaled = grey_views.astype(np.float32) * np.float32(spec.scale)
    return np.repeat(scaled[..., None], spec.channels, axis=-1)
