"""Batched inference in TensorFlow: TTA views of a whole batch in one forward pass, and
Grad-CAM for all 15 labels from the head's weights (the Jacobian form, head_cams, is kept
as the reference a test holds it to), both inside traced tf.functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from core.analyzer_base import AnalyzerBase
from core.model import device_name, load_model, split_model, use_mixed_precision_if_gpu


def head_cams(features: tf.Tensor, head: Callable[[tf.Tensor], tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Logits (B, L) and Grad-CAM maps (B, L, h, w) for every label from one batch Jacobian.

    ``features`` are the last convolutional block's activations; ``head`` maps them to
    logits. One Jacobian gives d logit_l / d A for all L labels at once instead of L
    gradient passes; the maps follow :func:`core.gradcam.grad_cam_numpy` exactly.
    """
    with tf.GradientTape() as tape:
        tape.watch(features)
        logits = head(features)
    jac = tf.cast(tape.batch_jacobian(logits, features), tf.float32)  # (B, L, h, w, K)
    alphas = tf.reduce_mean(jac, axis=[2, 3])  # (B, L, K)
    cams = tf.nn.relu(tf.einsum("bhwk,blk->blhw", tf.cast(features, tf.float32), alphas))
    peak = tf.reduce_max(cams, axis=[2, 3], keepdims=True)
    return logits, tf.math.divide_no_nan(cams, peak)


def _load_gate_trunk(folder: Path, spec: dict, size: int):
    """The gate's own feature trunk (EfficientNet-Lite0, ImageNet) from the model folder."""
    from core.architectures import build_lite0

    trunk = build_lite0(include_top=False, input_size=size)
    trunk.load_weights(folder / spec["file"])  # its sha256 was checked when the card was loaded
    return trunk


class Analyzer(AnalyzerBase):
    """Loads a model folder once, traces its functions once, and analyses batches (TensorFlow:
    training, GPU machines, and any model folder without a CPU runtime file)."""

    def __init__(
        self, model_dir: str | Path, views: tuple[str, ...] | list[str] | None = None, warm_up: bool = True
    ) -> None:
        self.mixed_precision = use_mixed_precision_if_gpu()
        self.model, card = load_model(model_dir)
        super().__init__(model_dir, card, views)
        self.device = device_name()
        self.backbone, self.head = split_model(self.model, self.card)
        gate_card = self.card.domain_gate or {}
        # the gate may read its own ImageNet trunk: a fine-tuned or batch-norm-adapted trunk
        # can map photographs close to radiographs, a generic one does not
        self.gate_trunk = (
            _load_gate_trunk(self.model_dir, gate_card["extractor"], self.size) if "extractor" in gate_card else None
        )
        self._kernel = tf.constant(self.head[-1].get_weights()[0], tf.float32)  # (K, L): Grad-CAM's weights
        self._transforms = tf.constant(np.stack([v.transform(self.size) for v in self._all_views]))
        self._gammas = tf.constant([v.gamma for v in self._all_views], dtype=tf.float32)
        self._analyse_fn = tf.function(self._analyse_graph, reduce_retracing=True)
        self._forward_fn = tf.function(self._forward_graph, reduce_retracing=True)
        self._views_fn = tf.function(self._views_graph, reduce_retracing=True)
        if warm_up:
            self.analyse([np.zeros((self.size, self.size), np.float32)])

    # ------------------------------------------------------------------ graphs
    def _to_model_input(self, grey: tf.Tensor) -> tf.Tensor:
        """(N, S, S, 1) in [0, 1] -> the card's scale and channels ([0, 255] x 3 for EfficientNet)."""
        return tf.repeat(grey * self.input_spec.scale, self.input_spec.channels, axis=-1)

    def _make_views(self, grey: tf.Tensor) -> tf.Tensor:
        """(B, S, S, 1) -> (B*V, S, S, 1): every view of every image, image-major."""
        b = tf.shape(grey)[0]
        v = tf.shape(self._transforms)[0]
        tiled = tf.repeat(grey, v, axis=0)
        transforms = tf.tile(self._transforms, [b, 1])
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=tiled,
            transforms=transforms,
            output_shape=tf.shape(grey)[1:3],
            interpolation="BILINEAR",
            fill_mode="NEAREST",
            fill_value=0.0,
        )
        gammas = tf.reshape(tf.tile(self._gammas, [b]), [-1, 1, 1, 1])
        return tf.pow(tf.clip_by_value(warped, 0.0, 1.0), gammas)

    def _head_logits(self, features: tf.Tensor) -> tf.Tensor:
        x = features
        for layer in self.head:
            x = layer(x, training=False)
        return tf.cast(x, tf.float32)

    def _analyse_graph(self, grey: tf.Tensor):
        b = tf.shape(grey)[0]
        v = tf.shape(self._transforms)[0]
        views = self._to_model_input(self._make_views(grey))
        features = self.backbone(views, training=False)
        identity = tf.gather(features, tf.range(b) * v)
        cams = self._weight_cams(identity)
        logits = self._head_logits(features)
        probs = tf.reshape(tf.sigmoid(logits), [b, v, -1])[:, self._mean_slice]
        head_features = tf.reduce_mean(tf.cast(identity, tf.float32), axis=[1, 2])  # what the head reads
        if self.gate_trunk is not None:
            identity = self.gate_trunk(tf.gather(views, tf.range(b) * v), training=False)
        pooled = tf.reduce_mean(tf.cast(identity, tf.float32), axis=[1, 2])
        return probs, cams, pooled, head_features

    def _weight_cams(self, activations: tf.Tensor) -> tf.Tensor:
        """Grad-CAM from the head's weights (core.linear_head.cams_from_head; the head is
        pooling + one dense layer, checked by split_model), equal to head_cams' Jacobian."""
        a = tf.cast(activations, tf.float32)
        area = tf.cast(tf.shape(a)[1] * tf.shape(a)[2], tf.float32)
        cams = tf.nn.relu(tf.einsum("bhwk,kl->blhw", a, self._kernel / area))
        return tf.math.divide_no_nan(cams, tf.reduce_max(cams, axis=[2, 3], keepdims=True))

    def _forward_graph(self, grey: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.model(self._to_model_input(grey), training=False), tf.float32)

    def _views_graph(self, grey: tf.Tensor) -> tf.Tensor:
        return self._make_views(grey)

    # ------------------------------------------------------------------ API
    def _batch(self, images: list[np.ndarray]) -> tf.Tensor:
        return tf.constant(self._prepared(images)[..., None])

    def forward(self, images: list[np.ndarray]) -> np.ndarray:
        """Plain forward pass, no TTA: (N, 15) probabilities."""
        return self._forward_fn(self._batch(images)).numpy()

    def augmented_views(self, image: np.ndarray) -> np.ndarray:
        """The (V, S, S) model-size views of one image, in view order (for checks)."""
        return self._views_fn(self._batch([image])).numpy()[..., 0]

    def raw_outputs(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As raw_scores, plus the pooled trunk features of the identity view that the head
        reads (N, K): from the same forward pass, kept so a new head can be fitted later
        without decoding an image again."""
        views, cams, pooled, head = self._analyse_fn(self._batch(images))
        return views.numpy().astype(np.float64), cams.numpy(), pooled.numpy(), head.numpy()
