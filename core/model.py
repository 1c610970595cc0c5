"""Build and load the EfficientNetB0 classifier; no weights are ever downloaded."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.errors import ModelCardMismatch  # noqa: E402
from core.model_card import ModelCard  # noqa: E402


def gpu_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU ({details.get('device_name', gpus[0].name)})"
    return "CPU"


def use_mixed_precision_if_gpu() -> bool:
    """Mixed precision only pays on a GPU; on the CPU float32 is faster and exact."""
    if gpu_available():
        keras.mixed_precision.set_global_policy("mixed_float16")
        return True
    return False


BACKBONES = ("efficientnetb0", "efficientnet_lite0")


def build_backbone(name: str, input_size: int) -> keras.Model:
    """The convolutional trunk, without weights (they come from a model folder or
    :mod:`training.pretrained`). Both normalise their [0, 255] input with Lite0's
    (x - 127) / 128, the statistics their ImageNet initialisation was trained with."""
    from core.architectures import (
        LITE0_MEAN,
        LITE0_STD,
        build_lite0,
        set_input_normalisation,
    )

    if name == "efficientnet_lite0":
        return build_lite0(include_top=False, input_size=input_size)
    if name != "efficientnetb0":
        raise ModelCardMismatch(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    backbone = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(input_size, input_size, 3)
    )
    set_input_normalisation(backbone, LITE0_MEAN, LITE0_STD)
    return backbone


def build_model(
    input_size: int = 224, n_labels: int = 15, dropout: float = 0.3, backbone_name: str = "efficientnetb0"
) -> keras.Model:
    """Backbone + GAP + dropout + logits + float32 sigmoid.

    The backbone stays a nested model whose output is the last convolutional block
    (``top_activation``): Grad-CAM reads that output and differentiates the small head.
    """
    backbone = build_backbone(backbone_name, input_size)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    features = backbone(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    dropped = keras.layers.Dropout(dropout, name="dropout")(pooled)
    logits = keras.layers.Dense(n_labels, name="logits", dtype="float32")(dropped)
    probs = keras.layers.Activation("sigmoid", name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, probs, name=f"cxr_{backbone_name}")


def split_model(model: keras.Model, card: ModelCard) -> tuple[keras.Model, list[keras.layers.Layer]]:
    """(feature extractor ending at the card's ``cam_layer``, head layers up to the logits)
    for Grad-CAM. The CAM layer is the card's choice, checked here: the head that follows it
    must be the pooling and logits this builder makes, so it is the trunk's last output."""
    trunk_name, layer = card.cam_target()
    try:
        backbone = model.get_layer(trunk_name)
        target = backbone.get_layer(layer)
    except ValueError as exc:
        raise ModelCardMismatch(f"cam_layer {card.cam_layer!r} is not a layer of this model") from exc
    if target is not backbone.layers[-1]:
        raise ModelCardMismatch(
            f"cam_layer {card.cam_layer!r} must be the trunk's last output "
            f"({trunk_name}/{backbone.layers[-1].name}): the Grad-CAM head is pool + logits"
        )
    return backbone, [model.get_layer("pool"), model.get_layer("logits")]


def load_model(folder: str | Path) -> tuple[keras.Model, ModelCard]:
    """Load a model folder; a card/weights disagreement is a ModelCardMismatch."""
    folder = Path(folder)
    card = ModelCard.load(folder)
    model = build_model(card.input_size, len(card.labels), backbone_name=card.backbone)
    try:
        model.load_weights(folder / card.weights_file)
    except (ValueError, KeyError, OSError) as exc:
        raise ModelCardMismatch(f"{folder}: weights do not fit the architecture in the card ({exc}).") from exc
    return model, card
