"""Train a model folder (weights + card) from an image folder and an NIH-format CSV.

``cxr train --images DIR --labels CSV --out models/NAME`` works unchanged on
the full NIH release. Split by patient (or the official train_val/test lists), focal
loss, oversampling of rare labels, plausible augmentation, mixed precision on a GPU,
early stopping on validation mean AUC, and thresholds chosen on validation patients at
a target sensitivity. The card records all of it, with the held-out evaluation computed
by :func:`training.evaluate.evaluation_report`, the same code ``training.evaluate`` runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core.labels import LABELS, NO_FINDING, label_vector


def patient_split(
    table: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int, strata: str | None = None
) -> pd.Series:
    """'train' / 'val' / 'test' per row, whole patients at a time (no patient in two splits).

    With ``strata`` (a column, e.g. the source folder) each stratum's patients are split
    by the same fractions, so every split holds the same mix of sources; a patient with
    rows in several strata is placed by their first row's.
    """
    if strata is None:
        return _split_patients(table["Patient ID"].astype(str), test_fraction, val_fraction, seed)
    first = table.assign(_pid=table["Patient ID"].astype(str)).drop_duplicates("_pid")
    split: dict[str, str] = {}
    for _, group in sorted(first.groupby(strata), key=lambda kv: str(kv[0])):
        part = _split_patients(group["_pid"], test_fraction, val_fraction, seed)
        split.update(zip(group["_pid"], part))
    return table["Patient ID"].astype(str).map(split)


def _split_patients(ids: pd.Series, test_fraction: float, val_fraction: float, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    patients = np.array(sorted(ids.unique()))
    rng.shuffle(patients)
    n_test = max(1, round(len(patients) * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(len(patients) * val_fraction))
    split = {p: "test" for p in patients[:n_test]}
    split.update({p: "val" for p in patients[n_test : n_test + n_val]})
    split.update({p: "train" for p in patients[n_test + n_val :]})
    return ids.map(split)


def official_split(table: pd.DataFrame, train_list: Path, test_list: Path, val_fraction: float, seed: int) -> pd.Series:
    """NIH's own train_val_list/test_list; validation patients are drawn from train_val."""
    test_names = set(Path(test_list).read_text().split())
    train_names = set(Path(train_list).read_text().split())
    split = pd.Series(None, index=table.index, dtype=object)
    split[table["Image Index"].isin(test_names)] = "test"
    tv = table[table["Image Index"].isin(train_names)]
    inner = patient_split(tv, 0.0, val_fraction, seed)
    split.loc[tv.index] = inner
    return split


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


def mean_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mean AUC over the findings (not No Finding) that have both classes."""
    from core.metrics import auc

    values = [auc(y[:, j], p[:, j]) for j in range(y.shape[1]) if LABELS[j] != NO_FINDING]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def choose_thresholds(
    y_val: np.ndarray, p_val: np.ndarray, y_tr: np.ndarray, p_tr: np.ndarray, target: float
) -> tuple[dict[str, float], dict[str, str]]:
    """Per label: highest threshold with validation sensitivity >= target; where the
    validation patients have no positive, the training images are used, and say so."""
    from core.metrics import threshold_for_sensitivity

    thresholds, how = {}, {}
    for j, label in enumerate(LABELS):
        t = threshold_for_sensitivity(y_val[:, j], p_val[:, j], target)
        source = f"validation ({int(y_val[:, j].sum())} positives)"
        if t is None:
            t = threshold_for_sensitivity(y_tr[:, j], p_tr[:, j], target)
            source = f"training images ({int(y_tr[:, j].sum())} positives): no validation positives"
        if t is None:
            t, source = 0.5, "no positives seen: default 0.5"
        thresholds[label] = round(float(t), 6)
        how[label] = source
    return thresholds, how


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr train")
    parser.add_argument("--images", required=True, type=Path, nargs="+", help="one or more image folders")
    parser.add_argument("--labels", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--name", default=None)
    parser.add_argument("--train-list", type=Path)
    parser.add_argument("--test-list", type=Path)
    parser.add_argument("--backbone", choices=["efficientnetb0", "efficientnet_lite0"], default="efficientnetb0")
    parser.add_argument(
        "--init",
        choices=["random", "imagenet"],
        default="imagenet",
        help="imagenet: the converted EfficientNet-Lite0 weights (training.pretrained)",
    )
    parser.add_argument(
        "--train-sources",
        nargs="*",
        default=None,
        help="learn only from these image folders' training patients (default: all)",
    )
    parser.add_argument(
        "--probe-c",
        type=float,
        nargs="+",
        default=list(PROBE_C_GRID),
        help="L2 strengths the linear probe's cross-validation chooses from",
    )
    parser.add_argument(
        "--gate-trunk",
        choices=["model", "imagenet-lite0"],
        default="model",
        help="features of the out-of-domain gate: the model's own trunk, or a separate ImageNet "
        "EfficientNet-Lite0 trunk saved in the model folder",
    )
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--adapt-bn",
        type=int,
        choices=[0, 1],
        default=0,
        help="re-estimate batch-norm statistics on the training images before the probe",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate, cosine decay")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument(
        "--freeze-bn",
        type=int,
        choices=[0, 1],
        default=1,
        help="keep pretrained batch-norm statistics fixed while fine-tuning (1)",
    )
    parser.add_argument(
        "--frozen-stages",
        type=int,
        default=2,
        help="with a pretrained trunk: keep the stem and this many first stages fixed",
    )
    parser.add_argument("--sampling-power", type=float, default=0.5)
    parser.add_argument("--low-res-probability", type=float, default=0.25)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--target-sensitivity", type=float, default=0.80)
    parser.add_argument("--focal-gamma", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from this model folder's weights (continue training; same split)",
    )
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="only recompute calibration, gate and held-out evaluation of the model folder --out",
    )
    args = parser.parse_args(argv)
    if args.evaluate_only:
        return evaluate_only(args.out, args.images, args.labels, args.target_sensitivity, args.gate_trunk)
    return train(args)


def initialise(model, args: argparse.Namespace) -> str:
    """Set the starting weights and say where they came from (recorded in the card)."""
    if args.init_from:
        from core.model import load_model

        start, start_card = load_model(args.init_from)
        model.set_weights(start.get_weights())
        return (
            f"continued from {start_card.name} {start_card.version} ({start_card.training.get('initialisation', '')})"
        )
    if args.init == "random":
        return "random (keras default initialisers)"
    from training import pretrained

    backbone = model.get_layer(args.backbone)
    n = pretrained.load_lite0_into(backbone, pretrained.read_legacy_state_dict(pretrained.default_checkpoint()))
    exact = (
        "exact"
        if args.backbone == "efficientnet_lite0"
        else (
            "convolutions and batch norms; squeeze-and-excitation gates opened (zero kernel, bias +6); "
            "swish where Lite0 has ReLU6"
        )
    )
    return f"ImageNet: {pretrained.SOURCE}; {n} layers mapped ({exact})"


PROBE_C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01)


def pooled_features(model, backbone_name: str, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """GAP of the trunk's last block for uint8 images (N, S, S), no augmentation."""
    import keras

    backbone = model.get_layer(backbone_name)
    pool = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    out = [pool.predict(to_model_input(x[i : i + batch_size]), verbose=0) for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


def fit_probe(features: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-label L2 logistic regression on standardised features, folded back into the
    raw features' (kernel (C, L), bias (L,)) so it drops into the Dense head exactly."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = features.mean(axis=0), features.std(axis=0) + 1e-6
    z = (features - mu) / sd
    kernel = np.zeros((features.shape[1], y.shape[1]))
    bias = np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        if y[:, j].min() == y[:, j].max():  # a label absent from training: a constant low logit
            bias[j] = -6.0
            continue
        lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(z, y[:, j])
        kernel[:, j] = lr.coef_[0] / sd
        bias[j] = lr.intercept_[0] - float(np.sum(lr.coef_[0] * mu / sd))
    return kernel.astype(np.float32), bias.astype(np.float32)


def choose_probe_c(
    features: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5, grid: tuple[float, ...] = PROBE_C_GRID
) -> tuple[float, dict]:
    """The L2 strength with the best mean AUC over findings in patient-grouped CV of the
    training patients (validation and test patients are not touched)."""
    from sklearn.model_selection import GroupKFold

    scores = {}
    for c in grid:
        oof = np.zeros_like(y, dtype=np.float64)
        for tr, te in GroupKFold(folds).split(features, y, groups):
            kernel, bias = fit_probe(features[tr], y[tr], c)
            oof[te] = features[te] @ kernel + bias
        scores[c] = round(mean_auc(y, oof), 4)
    best = max(scores, key=lambda c: scores[c])
    return best, scores


def adapt_batch_norm(
    model, backbone_name: str, x: np.ndarray, seed: int, passes: int = 2, batch_size: int = 32
) -> None:
    """Re-estimate the trunk's batch-norm statistics on the training radiographs (AdaBN).

    EfficientNetB0 initialised from Lite0 computes swish where Lite0 had ReLU6, so the
    ImageNet statistics no longer describe its activations; a few forward passes in
    training mode (no weight update) measure the real ones."""
    import keras

    backbone = model.get_layer(backbone_name)
    bns = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.8
    rng = np.random.default_rng(seed)
    for _ in range(passes):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            backbone(to_model_input(x[order[i : i + batch_size]]), training=True)
    for layer, momentum in zip(bns, momenta, strict=True):
        layer.momentum = momentum


def _set_backbone_trainable(
    model, backbone_name: str, trainable: bool, freeze_bn: bool = False, frozen_stages: int = 0
) -> int:
    """Unfreeze the trunk for fine-tuning, except: its batch norms when ``freeze_bn`` (a
    few hundred images cannot re-estimate ImageNet statistics, and batch statistics in
    training but lagging moving averages at inference make validation collapse), and
    the stem plus the first ``frozen_stages`` stages (generic edges and textures, and the
    costliest layers to back-propagate at full resolution). Returns trainable layers."""
    import keras

    backbone = model.get_layer(backbone_name)
    backbone.trainable = trainable
    if not trainable:
        return 0
    frozen_prefixes = ("stem_",) + tuple(f"block{i}" for i in range(1, frozen_stages + 1)) if frozen_stages else ()
    count = 0
    for layer in backbone.layers:
        layer.trainable = not (
            layer.name.startswith(frozen_prefixes) or (freeze_bn and isinstance(layer, keras.layers.BatchNormalization))
        )
        count += bool(layer.trainable and layer.weights)
    return count


def train(args: argparse.Namespace) -> int:
    import keras
    import tensorflow as tf

    from core.model import build_model, device_name, use_mixed_precision_if_gpu
    from core.model_card import ModelCard, file_sha256
    from training.evaluate import matched_table

    keras.utils.set_random_seed(args.seed)
    mixed = use_mixed_precision_if_gpu()
    table = matched_table(args.images, args.labels)
    if "Patient ID" not in table:
        print("the label table needs a Patient ID column to split by patient", file=sys.stderr)
        return 2
    if args.train_list and args.test_list:
        table["split"] = official_split(table, args.train_list, args.test_list, args.val_fraction, args.seed)
        split_how = "official NIH train_val_list/test_list; validation patients drawn from train_val"
    else:
        table["split"] = patient_split(table, args.test_fraction, args.val_fraction, args.seed, strata="source")
        split_how = (
            f"random by Patient ID (seed {args.seed}), stratified by source folder: "
            f"{args.test_fraction:.0%} of each folder's patients test, {args.val_fraction:.0%} validation"
        )
    table = table[table["split"].notna()].reset_index(drop=True)
    y_all = np.stack([label_vector(t) for t in table["Finding Labels"]])
    parts = {s: table.index[table["split"] == s].to_numpy() for s in ("train", "val", "test")}
    print(
        f"images: {len(table)} from {table['Patient ID'].nunique()} patients; "
        + ", ".join(f"{k} {len(v)}" for k, v in parts.items()),
        flush=True,
    )
    t0 = time.time()
    x_all = load_images(list(table["path"]), args.input_size)
    print(
        f"decoded and resized in {time.time() - t0:.1f}s; device {device_name()}; mixed precision {mixed}", flush=True
    )

    tr, va = parts["train"], parts["val"]
    if args.train_sources:  # a recipe choice: learn from these folders only (split unchanged)
        tr = tr[table.loc[tr, "source"].isin(args.train_sources).to_numpy()]
        print(f"training on {len(tr)} images from {', '.join(args.train_sources)}", flush=True)
    rng = np.random.default_rng(args.seed)
    probs = sampling_weights(y_all[tr], args.sampling_power)
    steps = max(1, math.ceil(len(tr) / args.batch_size))

    def epoch_indices():
        while True:
            yield from rng.choice(tr, size=steps * args.batch_size, p=probs)

    ds = tf.data.Dataset.from_generator(epoch_indices, output_signature=tf.TensorSpec([], tf.int64))
    ds = ds.map(lambda i: (tf.gather(x_all, i), tf.gather(y_all, i)))
    ds = ds.map(augment_fn(args.input_size, args.low_res_probability), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(args.batch_size).prefetch(2)

    model = build_model(args.input_size, len(LABELS), args.dropout, backbone_name=args.backbone)
    init_note = initialise(model, args)
    loss = keras.losses.BinaryFocalCrossentropy(gamma=args.focal_gamma)
    x_val = to_model_input(x_all[va])
    best = {"auc": -1.0, "epoch": 0, "weights": None}
    history: list[dict] = []

    class ValAuc(keras.callbacks.Callback):
        def __init__(self, stage: str, offset: int) -> None:
            super().__init__()
            self.stage, self.offset = stage, offset

        def on_epoch_end(self, epoch, logs=None):
            p = self.model.predict(x_val, batch_size=64, verbose=0)
            score = mean_auc(y_all[va], p)
            n = self.offset + epoch + 1
            loss_value = (logs or {}).get("loss")
            loss_value = None if loss_value is None or not np.isfinite(loss_value) else round(float(loss_value), 5)
            history.append(
                {"epoch": n, "stage": self.stage, "loss": loss_value, "val_mean_auc_findings": round(score, 4)}
            )
            print(
                f"epoch {n} ({self.stage}): loss {loss_value}  val mean AUC {score:.4f}  ({time.time() - t0:.0f}s)",
                flush=True,
            )
            if score > best["auc"]:
                best.update(auc=score, epoch=n, weights=self.model.get_weights())
            elapsed = (time.time() - t0) / 60
            if self.stage == "fine-tune" and (
                n - best["epoch"] >= args.patience or (args.max_minutes and elapsed > args.max_minutes)
            ):
                self.model.stop_training = True

    verbose = 1 if sys.stdout.isatty() else 2
    probe_note = "none"
    if args.init == "imagenet" and not args.init_from:
        if args.adapt_bn:
            adapt_batch_norm(model, args.backbone, x_all[tr], args.seed)
        # linear probe first: a strongly regularised head on the frozen trunk, fitted in
        # closed form, then (optionally) fine-tuning from there (LP-FT)
        feats = pooled_features(model, args.backbone, x_all[tr])
        c, cv = choose_probe_c(
            feats, y_all[tr], table.loc[tr, "Patient ID"].astype(str).to_numpy(), grid=tuple(args.probe_c)
        )
        kernel, bias = fit_probe(feats, y_all[tr], c)
        model.get_layer("logits").set_weights([kernel, bias])
        probe_note = (
            f"per-label L2 logistic regression on the frozen trunk's pooled features (class-balanced), "
            f"C={c} chosen by 5-fold patient-grouped CV of the training patients: {cv}"
        )
        print(probe_note, flush=True)
        probe_check = ValAuc("linear probe", -1)
        probe_check.set_model(model)
        probe_check.on_epoch_end(0, {})
    if args.init == "imagenet" or args.init_from:
        n = _set_backbone_trainable(model, args.backbone, True, args.freeze_bn, args.frozen_stages)
        print(
            f"fine-tuning {n} backbone layers (batch norms frozen: {args.freeze_bn}, "
            f"stages frozen: stem + {args.frozen_stages})",
            flush=True,
        )
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=max(1, args.epochs * steps), alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    if args.epochs > 0:
        model.fit(ds, epochs=args.epochs, steps_per_epoch=steps, callbacks=[ValAuc("fine-tune", 0)], verbose=verbose)
    model.set_weights(best["weights"])
    train_seconds = time.time() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / "model.weights.h5"
    # save from an uncompiled twin: a compiled model's file also carries the optimizer
    # state (3x the size), which inference never needs
    export = build_model(args.input_size, len(LABELS), args.dropout, backbone_name=args.backbone)
    export.set_weights(model.get_weights())
    export.save_weights(weights_path)
    name = args.name or args.out.name
    card = ModelCard(
        name=name,
        labels=list(LABELS),
        input_size=args.input_size,
        weights_file=weights_path.name,
        weights_sha256=file_sha256(weights_path),
        thresholds={lab: 0.5 for lab in LABELS},
        threshold_method="(set by calibrate_and_evaluate)",
        backbone=args.backbone,
        architecture=_ARCHITECTURES[args.backbone],
        cam_layer=f"{args.backbone}/top_activation",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card.training = {
        "data": f"images in {', '.join(p.name + '/' for p in args.images)} matched to {args.labels.name}",
        "n_images": {k: int(len(v)) for k, v in parts.items()},
        "n_patients": {k: int(table.loc[v, "Patient ID"].nunique()) for k, v in parts.items()},
        "n_images_by_source": {k: table.loc[v, "source"].value_counts().to_dict() for k, v in parts.items()},
        "positives_in_training": {lab: int(y_all[tr, j].sum()) for j, lab in enumerate(LABELS)},
        "images_learnt_from": int(len(tr)),
        "learnt_from_sources": args.train_sources or sorted(table["source"].unique()),
        "split": split_how,
        "input_size": args.input_size,
        "source_resolution": sorted({f"{w}x{h}" for w, h in _sizes(table["path"])}),
        "initialisation": init_note,
        "loss": f"binary focal cross-entropy, gamma {args.focal_gamma}",
        "sampling": (
            f"oversampling: each image drawn with probability proportional to (1/frequency of its "
            f"rarest label)^{args.sampling_power}"
        ),
        "augmentation": (
            f"rotation +-7 deg, scale 0.9-1.1, shift +-4%, gamma 0.8-1.2, with probability "
            f"{args.low_res_probability} a round trip through 48-128 px; no flips"
        ),
        "linear_probe": probe_note,
        "batch_norm_adapted": bool(args.adapt_bn and args.init == "imagenet"),
        "schedule": (
            ("linear probe (epoch 0), then " if args.init == "imagenet" else "") + f"the trunk from stage "
            f"{args.frozen_stages + 1 if args.init == 'imagenet' else 1} on (batch norms frozen: "
            f"{bool(args.freeze_bn) and args.init == 'imagenet'}), Adam with "
            f"cosine decay from {args.lr}, up to {args.epochs} epochs, early stop after "
            f"{args.patience} without a better validation mean AUC; the best epoch (0 = the probe "
            f"alone) is kept"
        ),
        "mixed_precision": mixed,
        "device": device_name(),
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "history": history,
        "optimizer": f"Adam, batch {args.batch_size}, dropout {args.dropout}",
        "training_seconds": round(train_seconds),
        "seed": args.seed,
        "reproduce": "cxr train " + " ".join(_reproduce_args(args)),
    }
    card.save(args.out)
    table[["Image Index", "Patient ID", "source", "split"]].to_csv(args.out / "training_images.csv", index=False)
    (args.out / "test_images.txt").write_text("\n".join(table.loc[parts["test"], "Image Index"]) + "\n")
    report = calibrate_and_evaluate(args.out, table, y_all, parts, args.target_sensitivity, args.gate_trunk)
    print(json.dumps({k: report[k] for k in ("mean_auc_findings", "abnormal_vs_no_finding_auc")}), flush=True)
    return 0


_ARCHITECTURES = {
    "efficientnetb0": "EfficientNetB0 (keras.applications) + GAP + dropout + 15-way sigmoid",
    "efficientnet_lite0": (
        "EfficientNet-Lite0 (keras.applications EfficientNet builder: ReLU6, no "
        "squeeze-and-excitation) + GAP + dropout + 15-way sigmoid"
    ),
}


def _reproduce_args(args: argparse.Namespace) -> list[str]:
    out = [
        "--images",
        *[f"../shared/data/nih/{p.name}" for p in args.images],
        "--labels",
        "../shared/data/nih/labels/Data_Entry_2017_v2020.csv.gz",
        "--out",
        args.out.as_posix(),
    ]
    if args.train_sources:
        out += ["--train-sources", *args.train_sources]
    out += ["--probe-c", *[f"{c:g}" for c in args.probe_c], "--gate-trunk", args.gate_trunk]
    for flag in (
        "backbone",
        "init",
        "input_size",
        "epochs",
        "adapt_bn",
        "batch_size",
        "lr",
        "dropout",
        "freeze_bn",
        "frozen_stages",
        "sampling_power",
        "low_res_probability",
        "patience",
        "test_fraction",
        "val_fraction",
        "focal_gamma",
        "seed",
    ):
        out += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return out


def _write_gate_trunk(out: Path, size: int) -> dict:
    """Save the ImageNet EfficientNet-Lite0 trunk into the model folder for the gate."""
    from core.model_card import file_sha256
    from training import pretrained

    trunk = pretrained.build_lite0(include_top=False, input_size=size)
    pretrained.load_lite0_into(trunk, pretrained.read_legacy_state_dict(pretrained.default_checkpoint()))
    path = out / "domain_trunk.weights.h5"
    trunk.save_weights(path)
    return {
        "file": path.name,
        "sha256": file_sha256(path),
        "backbone": "efficientnet_lite0",
        "source": pretrained.SOURCE,
    }


def calibrate_and_evaluate(
    out: Path,
    table: pd.DataFrame,
    y_all: np.ndarray,
    parts: dict[str, np.ndarray],
    target: float,
    gate_trunk: str = "model",
) -> dict:
    """Everything chosen after the weights, on validation patients only, then the test:

    1. Platt scaling per label on the validation patients' TTA means;
    2. thresholds on the calibrated validation scores at the target sensitivity, with the
       number of validation positives behind each (fewer than 10: marked unreliable);
    3. the out-of-domain gate from the training images' pooled features, its threshold
       from the validation images';
    4. the held-out evaluation (analyzer with TTA, calibrated), calibration error before and
       after, and P(abnormal)'s AUC, written into the card.
    """
    from core.calibration import (
        Platt,
        expected_calibration_error,
        fit_platt,
        reliability_bins,
    )
    from core.domain import METHOD as DOMAIN_METHOD
    from core.domain import STATS_FILE, fit_gate
    from core.inference import Analyzer
    from core.metrics import auc
    from core.model_card import ModelCard, file_sha256
    from training.evaluate import evaluation_report

    card = ModelCard.load(out)
    card.calibration, card.domain_gate = {}, {}
    if gate_trunk == "imagenet-lite0":
        card.domain_gate = {"extractor": _write_gate_trunk(out, card.input_size)}
    card.save(out)
    analyzer = Analyzer(out)
    raw = {s: _analyzer_scores(analyzer, list(table.loc[idx, "path"])) for s, idx in parts.items() if s != "train"}
    plain = Analyzer(out, views=["identity"])
    train_pooled = _analyzer_scores(plain, list(table.loc[parts["train"], "path"]))[1]
    y = {s: y_all[idx] for s, idx in parts.items()}
    # the rounded values the card stores are the ones applied, here and in the analyzer
    card.calibration = {lab: fit_platt(y["val"][:, j], raw["val"][0][:, j]).to_dict() for j, lab in enumerate(LABELS)}
    platt = {lab: Platt(**c) for lab, c in card.calibration.items()}

    def calibrated(p_raw: np.ndarray) -> np.ndarray:
        return np.stack([platt[lab].apply(p_raw[:, j]) for j, lab in enumerate(LABELS)], axis=1)

    p_val = calibrated(raw["val"][0])
    # no fallback to training images: a label without validation positives gets the default
    thresholds, how = choose_thresholds(y["val"], p_val, y["val"][:0], p_val[:0], target)
    card.thresholds = thresholds
    card.threshold_support = {lab: int(y["val"][:, j].sum()) for j, lab in enumerate(LABELS)}
    card.threshold_method = (
        f"per label, the highest threshold whose sensitivity on the validation patients "
        f"(calibrated, TTA) is at least {target:.2f}; fewer than 10 validation positives "
        f"marks a threshold unreliable; sources: " + json.dumps(how)
    )
    gate = fit_gate(train_pooled, raw["val"][1])
    stats = gate.save(out)
    extractor = card.domain_gate.get("extractor")
    card.domain_gate = {
        "file": STATS_FILE,
        "sha256": file_sha256(stats),
        "threshold": round(gate.threshold, 6),
        "method": DOMAIN_METHOD.format(k=gate.k, margin=1.1),
        "features_from": f"{len(parts['train'])} training images",
        "trunk": (
            "its own ImageNet EfficientNet-Lite0 trunk (domain_trunk.weights.h5)" if extractor else "the model's trunk"
        ),
    }
    if extractor:
        card.domain_gate["extractor"] = extractor
    val_sources = table.loc[parts["val"], "source"].to_numpy()
    NF = LABELS.index(NO_FINDING)  # noqa: N806
    card.training["validation"] = {
        src: {
            "n_images": int(m.sum()),
            "mean_auc_findings": _round4(mean_auc(y["val"][m], p_val[m])),
            "abnormal_auc": _round4(auc(1 - y["val"][m][:, NF], 1 - p_val[m][:, NF])),
        }
        for src, m in [("all", np.ones(len(val_sources), bool))]
        + [(s, val_sources == s) for s in sorted(set(val_sources))]
    }
    card.abnormal = {
        "method": "calibrated 1 - P(No Finding)",
        "why": (
            "No Finding is trained as a label; its calibrated complement is the probability "
            "that a reader finds something, one number for the worklist order"
        ),
    }
    card.save(out)

    # the analyzer's analyse() is calibrate(TTA mean of raw views): the same numbers from the
    # test pass above, without running the 8 views of every test image a second time
    p_test = calibrated(raw["test"][0])
    groups = table.loc[parts["test"], "Patient ID"].astype(str).to_numpy()
    report = evaluation_report(y["test"], p_test, groups)
    sources = table.loc[parts["test"], "source"].to_numpy()
    report["by_source"] = {
        src: {
            k: v
            for k, v in evaluation_report(
                y["test"][sources == src], p_test[sources == src], groups[sources == src], n_boot=300
            ).items()
            if k
            in (
                "n_images",
                "n_patients",
                "mean_auc_findings",
                "mean_auc_findings_ci95",
                "abnormal_vs_no_finding_auc",
                "abnormal_vs_no_finding_ci95",
            )
        }
        for src in sorted(set(sources))
    }
    p_test_raw = raw["test"][0]
    report["calibration"] = {
        "ece_before": round(expected_calibration_error(y["test"], p_test_raw), 4),
        "ece_after": round(expected_calibration_error(y["test"], p_test), 4),
        "reliability_before": reliability_bins(y["test"], p_test_raw),
        "reliability_after": reliability_bins(y["test"], p_test),
        "note": "all (image, label) pairs of the held-out test patients, 10 equal-width bins",
    }
    report["split"] = "held-out test patients (never seen in training, calibration or threshold choice)"
    report["tta_views"] = len(analyzer.views)
    report["reproduce"] = (
        "cxr evaluate --images ../shared/data/nih/dev512 ../shared/data/nih/small64 "
        "--labels ../shared/data/nih/labels/Data_Entry_2017_v2020.csv.gz "
        f"--model {out.as_posix()} --only {out.as_posix()}/test_images.txt --json"
    )
    card.evaluation = report
    card.abnormal["held_out_auc"] = report["abnormal_vs_no_finding_auc"]
    card.abnormal["held_out_ci95"] = report["abnormal_vs_no_finding_ci95"]
    card.save(out)
    from training.export_runtime import convert

    convert(out)  # the CPU runtime's files, named with their sha256 in the card
    return report


def _round4(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _analyzer_scores(analyzer, paths: list[Path], batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(raw TTA-mean probabilities, pooled identity features) for files, decoded as the worker does."""
    from core.decode import decode_bytes

    probs, pooled = [], []
    for start in range(0, len(paths), batch):
        images = [decode_bytes(p.read_bytes()).pixels for p in paths[start : start + batch]]
        views, _, feats = analyzer.raw_scores(images)
        probs.append(views.mean(axis=1))
        pooled.append(feats)
    return np.concatenate(probs), np.concatenate(pooled)


def evaluate_only(out: Path, images: list[Path], labels: Path, target: float, gate_trunk: str = "model") -> int:
    """Recompute calibration, gate and held-out evaluation of a finished model folder
    from its own split (training_images.csv)."""
    from training.evaluate import matched_table

    split = pd.read_csv(out / "training_images.csv").set_index("Image Index")["split"]
    table = matched_table(images, labels)
    table = table[table["Image Index"].isin(split.index)].reset_index(drop=True)
    table["split"] = table["Image Index"].map(split)
    y = np.stack([label_vector(t) for t in table["Finding Labels"]])
    parts = {s: table.index[table["split"] == s].to_numpy() for s in ("train", "val", "test")}
    report = calibrate_and_evaluate(out, table, y, parts, target, gate_trunk)
    print(json.dumps({"mean_auc_findings": report["mean_auc_findings"], "n_images": report["n_images"]}))
    return 0


def _sizes(paths) -> list[tuple[int, int]]:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.size)
    return out
