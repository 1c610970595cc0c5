"""Test-time augmentation views that keep a chest radiograph anatomically plausible.

No flips: a left-right flip moves the heart to the right (dextrocardia) and changes
what Cardiomegaly and side-specific findings look like; an upside-down chest never
occurs. Small rotations, scale changes, shifts (patient positioning) and gamma
(exposure) do occur in practice, so those are the views offered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class View:
    name: str
    angle_deg: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0  # fraction of the width, + moves content right
    shift_y: float = 0.0  # fraction of the height, + moves content down
    gamma: float = 1.0

    def transform(self, size: int) -> np.ndarray:
        """8-vector output->input projective transform (tf.raw_ops.ImageProjectiveTransformV3)."""
        c = (size - 1) / 2.0
        theta = math.radians(self.angle_deg)
        cos, sin = math.cos(theta), math.sin(theta)
        # inverse of p' = s R (p - c) + c + t  is  p = R^-1 (p' - c - t) / s + c
        a = np.array([[cos, sin], [-sin, cos]]) / self.scale
        t = np.array([self.shift_x * size, self.shift_y * size])
        offset = np.array([c, c]) - a @ (np.array([c, c]) + t)
        return np.array([a[0, 0], a[0, 1], offset[0], a[1, 0], a[1, 1], offset[1], 0.0, 0.0], dtype=np.float32)


AVAILABLE_VIEWS: dict[str, View] = {
    v.name: v
    for v in (
        View("identity"),
        View("rotate_p5", angle_deg=5.0),
        View("rotate_m5", angle_deg=-5.0),
        View("zoom_in", scale=1.08),
        View("zoom_out", scale=0.93),
        View("shift_up", shift_y=-0.03),
        View("shift_down", shift_y=0.03),
        View("gamma_low", gamma=0.85),
        View("gamma_high", gamma=1.15),
    )
}
DEFAULT_VIEWS: tuple[str, ...] = (
    "identity",
    "rotate_p5",
    "rotate_m5",
    "zoom_in",
    "zoom_out",
    "shift_up",
    "gamma_low",
    "gamma_high",
)


def resolve_views(names: tuple[str, ...] | list[str] | None) -> list[View]:
    """Views by name (default set when empty); unknown names are an error, not ignored."""
    names = tuple(names) if names else DEFAULT_VIEWS
    unknown = [n for n in names if n not in AVAILABLE_VIEWS]
    if unknown:
        raise ValueError(f"unknown TTA view(s) {unknown}; available: {sorted(AVAILABLE_VIEWS)}")
    return [AVAILABLE_VIEWS[n] for n in names]
