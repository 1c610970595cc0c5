"""What the worker needs of a model, whatever runs it (TensorFlow, ONNX Runtime or a test's
wrapper): its card, the device it runs on, its TTA views, its folder and one verb."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from core.analysis import Analysis
from core.model_card import ModelCard
from core.tta import View


class StudyAnalyzer(Protocol):
    card: ModelCard
    device: str
    views: list[View]
    model_dir: Path

    def analyse(self, images: list[np.ndarray], thresholds: dict[str, float] | None = None) -> list[Analysis]:
        """Calibrated probabilities, flags, the domain gate and Grad-CAM for each image."""
        ...
