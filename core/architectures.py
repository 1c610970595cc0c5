"""The EfficientNet-Lite0 architecture and the input normalisation both backbones share:
what the runtime needs to rebuild a model folder's network (its weights come from the
folder; ``training.pretrained`` converts the ImageNet checkpoint they start from)."""

from __future__ import annotations

import numpy as np

LITE0_MEAN, LITE0_STD = 127.0, 128.0  # Lite0's own preprocessing: (x - 127) / 128


def _blocks_args(se_ratio: float) -> list[dict]:
    """EfficientNet-B0's seven stages (keras.applications' DEFAULT_BLOCKS_ARGS)."""
    from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS

    return [dict(args, se_ratio=se_ratio) for args in DEFAULT_BLOCKS_ARGS]


def build_lite0(include_top: bool = True, input_size: int = 224, classes: int = 1000):
    """EfficientNet-Lite0 with the keras.applications builder: ReLU6, no SE, Lite0 scaling.

    Its Normalization layer is set to Lite0's (x - 127) / 128 on [0, 255] input.
    """
    import keras
    from keras.src.applications.efficientnet import EfficientNet

    model = EfficientNet(
        1.0,
        1.0,
        224,
        dropout_rate=0.2,
        name="efficientnet_lite0",
        activation=keras.activations.relu6,
        blocks_args=_blocks_args(0.0),
        include_top=include_top,
        weights=None,
        input_shape=(input_size, input_size, 3),
        classes=classes,
        classifier_activation="softmax" if include_top else None,
    )
    set_input_normalisation(model, LITE0_MEAN, LITE0_STD)
    return model


def set_input_normalisation(model, mean: float, std: float) -> None:
    """keras.applications EfficientNets scale by 1/255 then normalise; set that pair so the
    whole stem computes (x - mean) / std. A Normalization layer built without weights
    ignores set_weights until finalize_state()."""
    norm = next(layer for layer in model.layers if layer.__class__.__name__ == "Normalization")
    current = norm.get_weights()  # [mean, variance, count] as stored (channel vectors)
    new = [np.full_like(current[0], mean / 255.0), np.full_like(current[1], (std / 255.0) ** 2)] + current[2:]
    norm.set_weights(new)
    norm.finalize_state()
