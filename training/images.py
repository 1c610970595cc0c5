"""Training images: decoded and resized once, oversampled by rare labels, augmented
with plausible changes (small shifts, rotations, contrast, low resolution)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def sampling_weights(y: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Oversample rare labels: each image weighs as its rarest positive label, (1/freq)^power.

    power 1 balances the labels fully; with a few hundred images that repeats the dozen
    Hernia films dozens of times an epoch and the network memorises them, so the default
    is the square root: rare labels are seen more often, not exclusively.
    """
    freq = y.mean(axis=0).clip(min=1.0 / len(y))
    w = np.where(y > 0, (1.0 / freq) ** power, 0.0).max(axis=1)
    w = np.where(w > 0, w, (1.0 / freq.max()) ** power)
    return w / w.sum()


def load_images(paths: list[Path], size: int) -> np.ndarray:
    from tqdm import tqdm

    from core.decode import decode_bytes
    from core.model_input import prepare

    out = np.zeros((len(paths), size, size), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc="decoding", unit="image", disable=len(paths) < 50)):
        out[i] = np.round(prepare(decode_bytes(p.read_bytes()).pixels, size) * 255).astype(np.uint8)
    return out


def augment_fn(size: int, low_res_probability: float = 0.25):
    """Random small rotation, scale, shift and gamma (what varies between real chest films),
    and sometimes a round trip through 48-128 px, so that the resolution an image arrives
    at carries no information about its labels (the training folders differ in it)."""
    import tensorflow as tf

    def aug(img, y):
        img = tf.cast(img, tf.float32)[..., None] / 255.0
        theta = tf.random.uniform([], -7.0, 7.0) * math.pi / 180
        scale = tf.random.uniform([], 0.9, 1.1)
        tx, ty = tf.random.uniform([], -0.04, 0.04) * size, tf.random.uniform([], -0.04, 0.04) * size
        c = (size - 1) / 2.0
        cos, sin = tf.cos(theta) / scale, tf.sin(theta) / scale
        a2 = c - (cos * (c + tx) + sin * (c + ty))
        b2 = c - (-sin * (c + tx) + cos * (c + ty))
        transform = tf.stack([cos, sin, a2, -sin, cos, b2, 0.0, 0.0])[None]
        img = tf.raw_ops.ImageProjectiveTransformV3(
            images=img[None],
            transforms=transform,
            output_shape=[size, size],
            interpolation="BILINEAR",
            fill_mode="NEAREST",
            fill_value=0.0,
        )[0]
        low = tf.random.uniform([], 48, 129, dtype=tf.int32)
        degraded = tf.image.resize(tf.image.resize(img, [low, low], antialias=True), [size, size])
        img = tf.cond(tf.random.uniform([]) < low_res_probability, lambda: degraded, lambda: img)
        img = tf.pow(tf.clip_by_value(img, 0.0, 1.0), tf.random.uniform([], 0.8, 1.2))
        return tf.repeat(img * 255.0, 3, axis=-1), y

    return aug


def to_model_input(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None].astype(np.float32), 3, axis=-1)
