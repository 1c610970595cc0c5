"""Grad-CAM (Selvaraju et al., 2017), kept independent of any particular model.

The engine supplies feature maps of the last convolutional block and the gradients of
each label's logit with respect to them; the functions here turn those into heatmaps
and overlays. :func:`grad_cam_numpy` is the reference formula the tests check against.
"""

from __future__ import annotations

import cv2
import numpy as np


def grad_cam_numpy(features: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM for L labels at once.

    features: (H, W, K) activations A^k; gradients: (L, H, W, K) = d logit_l / d A^k_ij.
    alpha_l^k = mean_ij gradients; cam_l = ReLU(sum_k alpha_l^k A^k), scaled to [0, 1]
    per label (a map with no positive evidence stays all zeros).
    """
    alphas = gradients.mean(axis=(1, 2))  # (L, K)
    cams = np.maximum(np.einsum("hwk,lk->lhw", features, alphas), 0.0)
    return normalise_maps(cams)


def normalise_maps(cams: np.ndarray) -> np.ndarray:
    peak = cams.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cams / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def upsample(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """A low-resolution map at the original image size, bilinear, clipped to [0, 1]."""
    out = cv2.resize(cam.astype(np.float32), (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def overlay(
    grey: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4, colormap: int = cv2.COLORMAP_JET
) -> np.ndarray:
    """RGB uint8 overlay of a [0, 1] heatmap on a grey image (uint8 or [0, 1] float).

    Pure: no file or model access, so the Review page can redraw at any opacity.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError("opacity must be in [0, 1]")
    base = grey if grey.dtype == np.uint8 else np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8)
    if heatmap.shape != base.shape[:2]:
        heatmap = upsample(heatmap, base.shape[1], base.shape[0])
    colour = cv2.applyColorMap(np.round(np.clip(heatmap, 0, 1) * 255).astype(np.uint8), colormap)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb = np.repeat(base[..., None], 3, axis=2).astype(np.float32)
    # weight by the heat itself so cold regions leave the radiograph untouched
    alpha = (opacity * np.clip(heatmap, 0, 1))[..., None]
    return np.round(rgb * (1 - alpha) + colour * alpha).astype(np.uint8)
