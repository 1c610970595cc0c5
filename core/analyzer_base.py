"""What every model runtime shares: the card, the TTA views, calibration, the domain gate,
and turning raw scores into an Analysis. A runtime (TensorFlow in core.inference, ONNX
Runtime in core.onnx_analyzer) only supplies ``raw_outputs``; the worker and ``cxr
predict`` read the rest through this one interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from core.analysis import Analysis
from core.calibration import Platt
from core.domain import DomainGate
from core.labels import NO_FINDING
from core.model_card import ModelCard
from core.model_input import prepare
from core.tta import View, resolve_views


@cache
def _blas() -> ThreadpoolController:
    """NumPy's BLAS as loaded in this process (found once: a lookup costs a scan of the
    loaded libraries)."""
    return ThreadpoolController()


class AnalyzerBase(ABC):
    device: str

    def __init__(self, model_dir: str | Path, card: ModelCard, views: tuple[str, ...] | list[str] | None) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.card = card
        self.labels = list(card.labels)
        self.input_spec = card.input_spec()
        self.size = self.input_spec.size
        self.views: list[View] = resolve_views(views)
        self.calibration = {lab: Platt(**card.calibration[lab]) for lab in card.calibration}
        gate_card = card.domain_gate or {}
        self.gate = DomainGate.load(self.model_dir / gate_card["file"]) if "file" in gate_card else None
        # identity first: its features feed Grad-CAM; an extra identity is dropped from the mean
        names = [v.name for v in self.views]
        self._all_views = self.views if names[0] == "identity" else resolve_views(["identity"]) + self.views
        self._mean_slice = slice(0, len(self.views)) if names[0] == "identity" else slice(1, len(self._all_views))

    def _prepared(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, S, S) float32: each image resized as the card says."""
        spec = self.input_spec
        return np.stack([prepare(img, spec.size, spec.interpolation) for img in images])

    @abstractmethod
    def raw_outputs(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Uncalibrated per-view probabilities (N, V, L), Grad-CAMs (N, L, h, w) in [0, 1],
        the domain gate's pooled features (N, C) and the head's pooled identity-view
        features (N, K)."""

    def raw_scores(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        views, cams, pooled, _ = self.raw_outputs(images)
        return views, cams, pooled

    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        """Apply the card's per-label Platt scaling to (..., L) probabilities."""
        out = np.array(probs, dtype=np.float64, copy=True)
        for j, lab in enumerate(self.labels):
            if lab in self.calibration:
                out[..., j] = self.calibration[lab].apply(out[..., j])
        return out

    def analyse(self, images: list[np.ndarray], thresholds: dict[str, float] | None = None) -> list[Analysis]:
        """Calibrated TTA mean and spread, the domain gate, flags at the thresholds (none
        outside the domain), and Grad-CAM for every label.

        NumPy's BLAS runs on one thread here: its products (head, gate) are tiny, and
        OpenBLAS's threads keep spinning for a while after each one, taking both cores from
        the runtime's next call (a whole study 167 ms with them, 136 ms without, here)."""
        with _blas().limit(limits=1, user_api="blas"):
            return self._analyse(images, thresholds or self.card.thresholds)

    def _analyse(self, images: list[np.ndarray], thresholds: dict[str, float]) -> list[Analysis]:
        views, cams, pooled, head_features = self.raw_outputs(images)
        mean = self.calibrate(views.mean(axis=1))
        spread = self.calibrate(views).std(axis=1)
        domain, inside_all = None, np.ones(len(images), bool)
        if self.gate is not None:
            domain = self.gate.score(pooled)
            inside_all = domain <= self.gate.threshold
        nf = self.labels.index(NO_FINDING) if NO_FINDING in self.labels else None
        out = []
        for i, img in enumerate(images):
            probs = {lab: float(mean[i, j]) for j, lab in enumerate(self.labels)}
            inside = bool(inside_all[i])
            out.append(
                Analysis(
                    probabilities=probs,
                    spread={lab: float(spread[i, j]) for j, lab in enumerate(self.labels)},
                    flagged=[lab for lab in self.labels if inside and probs[lab] >= thresholds[lab]],
                    cams=cams[i],
                    width=int(img.shape[1]),
                    height=int(img.shape[0]),
                    tta_views=len(self.views),
                    thresholds=dict(thresholds),
                    abnormal=None if nf is None else float(1.0 - mean[i, nf]),
                    in_domain=inside,
                    domain_score=None if domain is None else float(domain[i]),
                    features=head_features[i].astype(np.float16),
                )
            )
        return out
