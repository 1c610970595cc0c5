"""The model card: labels, input, thresholds, training data and evaluation, shipped in
the same folder as the weights so a score is never read without its context."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelCardMismatch

CARD_FILE = "model_card.json"
INTERPOLATIONS = {"area", "linear"}  # area when shrinking (linear when enlarging), or linear always
MIN_THRESHOLD_SUPPORT = 10  # validation positives below which a threshold is marked unreliable


@dataclass(frozen=True)
class InputSpec:
    size: int
    interpolation: str  # "area": area-averaged when shrinking, bilinear when enlarging
    scale: float  # [0, 1] grey is multiplied by this
    channels: int  # grey replicated to this many channels


@dataclass
class ModelCard:
    name: str
    labels: list[str]
    input_size: int
    weights_file: str
    weights_sha256: str
    thresholds: dict[str, float]
    threshold_method: str
    architecture: str = "EfficientNetB0 (keras.applications, weights=None) + GAP + dropout + 15-way sigmoid"
    # read by core.inference (see InputSpec); the prose keys describe the same steps
    preprocessing: dict[str, Any] = field(
        default_factory=lambda: {
            "grey": "decoded to one channel in [0, 1] (DICOM: modality LUT, VOI LUT/window, MONOCHROME1 inverted)",
            "resize": "whole image to input_size x input_size, cv2.INTER_AREA, aspect not preserved",
            "scale": "x255, replicated to 3 channels; EfficientNet's own rescaling/normalisation layers follow",
            "interpolation": "area",
            "input_scale": 255.0,
            "channels": 3,
        }
    )
    cam_layer: str = "efficientnetb0/top_activation"  # "<trunk>/<its last conv output>": Grad-CAM reads it
    backbone: str = "efficientnetb0"  # which trunk core.model builds; the card drives the code
    # per label {"slope", "intercept"} of Platt scaling on logit(TTA mean); empty = raw sigmoid
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)
    # per label: validation positives behind its threshold; fewer than 10 = unreliable
    threshold_support: dict[str, int] = field(default_factory=dict)
    # out-of-domain gate: {"file", "sha256", "threshold", "method", ...}; empty = no gate
    domain_gate: dict[str, Any] = field(default_factory=dict)
    # CPU runtime files: {"onnx": {"trunk": {"file", "sha256"}, "gate_trunk": {...}, ...}};
    # empty = TensorFlow only. Not part of the version: the same weights, another engine.
    runtime: dict[str, Any] = field(default_factory=dict)
    abnormal: dict[str, Any] = field(default_factory=dict)  # how P(abnormal) is made, its held-out AUC
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    intended_use: str = (
        "Screening aid for radiologist review of frontal chest radiographs. "
        "Not a diagnosis; every output needs review by a radiologist."
    )
    created_at: str = ""

    @property
    def version(self) -> str:
        """Content hash of weights + labels + input size: changes whenever the model does."""
        parts = [self.weights_sha256, self.labels, self.input_size]
        if self.calibration or self.domain_gate:  # older cards keep their version
            parts += [self.calibration, self.domain_gate.get("sha256"), self.domain_gate.get("threshold")]
            if self.domain_gate.get("extractor"):
                parts.append(self.domain_gate["extractor"].get("sha256"))
        text = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def input_spec(self) -> InputSpec:
        """How an image in [0, 1] becomes the model's input, as the card states it."""
        pre = self.preprocessing
        return InputSpec(
            self.input_size,
            str(pre.get("interpolation", "area")),
            float(pre.get("input_scale", 255.0)),
            int(pre.get("channels", 3)),
        )

    def cam_target(self) -> tuple[str, str]:
        """(trunk layer name, layer inside it) whose activations Grad-CAM explains."""
        trunk, _, layer = self.cam_layer.partition("/")
        return trunk, layer

    def threshold_reliable(self, label: str) -> bool | None:
        """False when fewer than MIN_THRESHOLD_SUPPORT validation positives chose it; None if unknown."""
        if label not in self.threshold_support:
            return None
        return self.threshold_support[label] >= MIN_THRESHOLD_SUPPORT

    @property
    def threshold_version(self) -> str:
        text = json.dumps(self.thresholds, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_json(self) -> str:
        data = asdict(self)
        data["version"] = self.version
        return json.dumps(data, indent=2, sort_keys=False)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / CARD_FILE
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> ModelCard:
        path = Path(folder) / CARD_FILE
        if not path.is_file():
            raise ModelCardMismatch(f"{folder}: no {CARD_FILE}; a model folder needs its card.")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelCardMismatch(
                f"{path}: the card is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})."
            ) from exc
        if not isinstance(data, dict):
            raise ModelCardMismatch(f"{path}: the card is not a JSON object.")
        stated_version = data.pop("version", None)
        try:
            card = cls(**data)
        except TypeError as exc:
            raise ModelCardMismatch(f"{path}: malformed card ({exc}).") from exc
        card.validate(Path(folder))
        if stated_version and stated_version != card.version:
            raise ModelCardMismatch(
                f"{path}: stated version {stated_version} does not match its content ({card.version})."
            )
        return card

    def validate(self, folder: Path) -> None:
        """Card and weights must agree: refuse rather than score with the wrong labels."""
        if not self.labels or len(set(self.labels)) != len(self.labels) or any("|" in lab for lab in self.labels):
            raise ModelCardMismatch(f"card labels {self.labels} must be a non-empty list of distinct names without '|'")
        spec = self.input_spec()
        if spec.interpolation not in INTERPOLATIONS or spec.channels not in (1, 3) or not spec.scale > 0:
            raise ModelCardMismatch(
                f"card preprocessing {self.preprocessing} is not one the engine can apply "
                f"(interpolation {sorted(INTERPOLATIONS)}, channels 1 or 3, input_scale > 0)"
            )
        trunk, layer = self.cam_target()
        if trunk != self.backbone or not layer:
            raise ModelCardMismatch(f"cam_layer {self.cam_layer!r} must name a layer of the {self.backbone} trunk")
        missing = set(self.labels) - set(self.thresholds)
        if missing:
            raise ModelCardMismatch(f"card has no threshold for {sorted(missing)}")
        weights = folder / self.weights_file
        if not weights.is_file():
            raise ModelCardMismatch(f"weights file {weights} named by the card is missing")
        actual = file_sha256(weights)
        if actual != self.weights_sha256:
            raise ModelCardMismatch(
                f"weights {weights.name} have sha256 {actual[:12]}…, the card says {self.weights_sha256[:12]}…"
            )
        unknown = set(self.calibration) - set(self.labels)
        if unknown:
            raise ModelCardMismatch(f"card calibrates unknown label(s) {sorted(unknown)}")
        extractor = self.domain_gate.get("extractor") if self.domain_gate else None
        if extractor:
            trunk = folder / extractor.get("file", "")
            if not trunk.is_file() or file_sha256(trunk) != extractor.get("sha256"):
                raise ModelCardMismatch(f"domain gate trunk {trunk.name} is missing or differs from the card")
        if self.domain_gate and "file" in self.domain_gate:
            stats = folder / self.domain_gate.get("file", "")
            if not stats.is_file() or file_sha256(stats) != self.domain_gate.get("sha256"):
                raise ModelCardMismatch(f"domain statistics {stats.name} are missing or differ from the card")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
