"""What the model says about one image, as a plain value (no TensorFlow): the worker,
the CLI and the tests handle results without loading the model's libraries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core import gradcam


@dataclass
class Analysis:
    """What the model says about one image."""

    probabilities: dict[str, float]
    spread: dict[str, float]
    flagged: list[str]
    cams: np.ndarray  # (15, h, w) low-resolution Grad-CAM maps in [0, 1], label order
    width: int
    height: int
    tta_views: int
    thresholds: dict[str, float] = field(default_factory=dict)
    abnormal: float | None = None  # calibrated P(abnormal) = 1 - P(No Finding)
    in_domain: bool = True  # False: the image is unlike the training radiographs
    domain_score: float | None = None
    # pooled trunk features of the identity view (what the head reads), float16: kept with
    # the result so the site can refit the head from its own reads without the images
    features: np.ndarray | None = None

    def heatmap(self, label_index: int) -> np.ndarray:
        """Grad-CAM for one label at the original image size, in [0, 1]."""
        return gradcam.upsample(self.cams[label_index], self.width, self.height)


def invalid_result(analysis) -> str | None:
    """Why a result must not be stored (non-finite numbers), or None when it is sound."""
    values = list(analysis.probabilities.values()) + list(analysis.spread.values())
    if analysis.abnormal is not None:
        values.append(analysis.abnormal)
    if not np.isfinite(np.asarray(values, dtype=np.float64)).all() or not np.isfinite(analysis.cams).all():
        return "The model produced non-finite output for this image; it was not stored."
    return None
