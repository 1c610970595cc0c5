"""Train a model folder (weights + card) from an image folder and an NIH-format CSV.

``python -m core.train --images DIR --labels CSV --out models/NAME`` works unchanged on
the full NIH release. Split by patient (or the official train_val/test lists), focal
loss, oversampling of rare labels, plausible augmentation, mixed precision on a GPU,
early stopping on validation mean AUC, and thresholds chosen on validation patients at
a target sensitivity. The card records all of it, with the held-out evaluation computed
by :func:`core.evaluate.evaluation_report`, the same code ``core.evaluate`` runs.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from core.labels import LABELS, label_vector


def patient_split(table: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int) -> pd.Series:
    """'train' / 'val' / 'test' per row, whole patients at a time (no patient in two splits)."""
    rng = np.random.default_rng(seed)
    patients = np.array(sorted(table["Patient ID"].astype(str).unique()))
    rng.shuffle(patients)
    n_test = max(1, round(len(patients) * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(len(patients) * val_fraction))
    split = {p: "test" for p in patients[:n_test]}
    split.update({p: "val" for p in patients[n_test:n_test + n_val]})
    split.update({p: "train" for p in patients[n_test + n_val:]})
    return table["Patient ID"].astype(str).map(split)


def official_split(table: pd.DataFrame, train_list: Path, test_list: Path, val_fraction: float,
                   seed: int) -> pd.Series:
    """NIH's own train_val_list/test_list; validation patients are drawn from train_val."""
    test_names = set(Path(test_list).read_text().split())
    train_names = set(Path(train_list).read_text().split())
    split = pd.Series(np.where(table["Image Index"].isin(test_names), "test", None), index=table.index)
    tv = table[table["Image Index"].isin(train_names)]
    inner = patient_split(tv, 0.0, val_fraction, seed)
    split.loc[tv.index] = inner
    return split


def sampling_weights(y: np.ndarray) -> np.ndarray:
    """Oversample rare labels: each image weighs as its rarest positive label (1/freq)."""
    freq = y.mean(axis=0).clip(min=1.0 / len(y))
    w = np.where(y > 0, 1.0 / freq, 0.0).max(axis=1)
    w = np.where(w > 0, w, 1.0 / freq.max())
    return w / w.sum()


def load_images(paths: list[Path], size: int) -> np.ndarray:
    from core.decode import decode_bytes
    from core.inference import prepare

    from tqdm import tqdm

    out = np.zeros((len(paths), size, size), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc="decoding", unit="image", disable=len(paths) < 50)):
        out[i] = np.round(prepare(decode_bytes(p.read_bytes()).pixels, size) * 255).astype(np.uint8)
    return out


def augment_fn(size: int):
    """Random small rotation, scale, shift and gamma: what varies between real chest films."""
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
            images=img[None], transforms=transform, output_shape=[size, size],
            interpolation="BILINEAR", fill_mode="NEAREST", fill_value=0.0)[0]
        img = tf.pow(tf.clip_by_value(img, 0.0, 1.0), tf.random.uniform([], 0.8, 1.2))
        return tf.repeat(img * 255.0, 3, axis=-1), y

    return aug


def to_model_input(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None].astype(np.float32), 3, axis=-1)


def mean_auc(y: np.ndarray, p: np.ndarray) -> float:
    from core.metrics import auc

    values = [auc(y[:, j], p[:, j]) for j in range(y.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def choose_thresholds(y_val: np.ndarray, p_val: np.ndarray, y_tr: np.ndarray, p_tr: np.ndarray,
                      target: float) -> tuple[dict[str, float], dict[str, str]]:
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
    parser = argparse.ArgumentParser(prog="python -m core.train")
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--labels", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--name", default=None)
    parser.add_argument("--train-list", type=Path)
    parser.add_argument("--test-list", type=Path)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--target-sensitivity", type=float, default=0.80)
    parser.add_argument("--focal-gamma", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from this model folder's weights (continue training; same split)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="only recompute the held-out evaluation of the model folder --out")
    args = parser.parse_args(argv)
    if args.evaluate_only:
        return evaluate_only(args.out, args.images, args.labels)
    return train(args)


def train(args: argparse.Namespace) -> int:
    import keras
    import tensorflow as tf

    from core.evaluate import matched_table
    from core.model import build_model, device_name, use_mixed_precision_if_gpu
    from core.model_card import ModelCard, file_sha256

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
        table["split"] = patient_split(table, args.test_fraction, args.val_fraction, args.seed)
        split_how = (f"random by Patient ID (seed {args.seed}): {args.test_fraction:.0%} of patients test, "
                     f"{args.val_fraction:.0%} validation")
    table = table[table["split"].notna()].reset_index(drop=True)
    y_all = np.stack([label_vector(t) for t in table["Finding Labels"]])
    parts = {s: table.index[table["split"] == s].to_numpy() for s in ("train", "val", "test")}
    print(f"images: {len(table)} from {table['Patient ID'].nunique()} patients; "
          + ", ".join(f"{k} {len(v)}" for k, v in parts.items()), flush=True)
    t0 = time.time()
    x_all = load_images(list(table["path"]), args.input_size)
    print(f"decoded and resized in {time.time() - t0:.1f}s; device {device_name()}; mixed precision {mixed}", flush=True)

    tr, va = parts["train"], parts["val"]
    rng = np.random.default_rng(args.seed)
    probs = sampling_weights(y_all[tr])
    steps = max(1, math.ceil(len(tr) / args.batch_size))

    def epoch_indices():
        while True:
            yield from rng.choice(tr, size=steps * args.batch_size, p=probs)

    ds = tf.data.Dataset.from_generator(epoch_indices, output_signature=tf.TensorSpec([], tf.int64))
    ds = ds.map(lambda i: (tf.gather(x_all, i), tf.gather(y_all, i)))
    ds = ds.map(augment_fn(args.input_size), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(args.batch_size).prefetch(2)

    model = build_model(args.input_size, len(LABELS))
    init_note = "random (no ImageNet weights: none can be downloaded here)"
    if args.init_from:
        from core.model import load_model

        start, start_card = load_model(args.init_from)
        model.set_weights(start.get_weights())
        init_note = (f"continued from {start_card.name} {start_card.version} "
                     f"({start_card.training.get('initialisation', '')}; "
                     f"{start_card.training.get('epochs_run', '?')} epochs before)")
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss=keras.losses.BinaryFocalCrossentropy(gamma=args.focal_gamma),
    )
    x_val = to_model_input(x_all[va])
    best = {"auc": -1.0, "epoch": 0, "weights": None}
    history = []

    class ValAuc(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            p = self.model.predict(x_val, batch_size=64, verbose=0)
            score = mean_auc(y_all[va], p)
            history.append({"epoch": epoch + 1, "loss": round(float(logs["loss"]), 5), "val_mean_auc": round(score, 4)})
            print(f"epoch {epoch + 1}: loss {logs['loss']:.4f}  val mean AUC {score:.4f}  ({time.time() - t0:.0f}s)", flush=True)
            if score > best["auc"]:
                best.update(auc=score, epoch=epoch + 1, weights=self.model.get_weights())
            elapsed = (time.time() - t0) / 60
            if epoch + 1 - best["epoch"] >= args.patience or (args.max_minutes and elapsed > args.max_minutes):
                self.model.stop_training = True

    # a live progress bar on a terminal, one line per epoch in a log file
    model.fit(ds, epochs=args.epochs, steps_per_epoch=steps, callbacks=[ValAuc()],
              verbose=1 if sys.stdout.isatty() else 2)
    model.set_weights(best["weights"])

    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / "model.weights.h5"
    # save from an uncompiled twin: a compiled model's file also carries the optimizer
    # state (3x the size), which inference never needs
    export = build_model(args.input_size, len(LABELS))
    export.set_weights(model.get_weights())
    export.save_weights(weights_path)
    p_val = model.predict(x_val, batch_size=64, verbose=0)
    p_tr = model.predict(to_model_input(x_all[tr]), batch_size=64, verbose=0)
    thresholds, how = choose_thresholds(y_all[va], p_val, y_all[tr], p_tr, args.target_sensitivity)
    name = args.name or args.out.name
    card = ModelCard(
        name=name, labels=list(LABELS), input_size=args.input_size, weights_file=weights_path.name,
        weights_sha256=file_sha256(weights_path), thresholds=thresholds,
        threshold_method=(f"per label, the highest threshold whose sensitivity on the validation patients "
                          f"(plain forward pass) is at least {args.target_sensitivity:.2f}; sources: "
                          + json.dumps(how)),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    card.training = {
        "data": f"images in {args.images.name}/ matched to {args.labels.name}",
        "n_images": {k: int(len(v)) for k, v in parts.items()},
        "n_patients": {k: int(table.loc[v, "Patient ID"].nunique()) for k, v in parts.items()},
        "positives_in_training": {lab: int(y_all[tr, j].sum()) for j, lab in enumerate(LABELS)},
        "split": split_how,
        "input_size": args.input_size,
        "source_resolution": sorted({f"{w}x{h}" for w, h in _sizes(table["path"])}),
        "initialisation": init_note,
        "loss": f"binary focal cross-entropy, gamma {args.focal_gamma}",
        "sampling": "oversampling: each image drawn with probability proportional to 1/frequency of its rarest label",
        "augmentation": "rotation +-7 deg, scale 0.9-1.1, shift +-4%, gamma 0.8-1.2; no flips",
        "mixed_precision": mixed, "device": device_name(),
        "epochs_run": len(history), "best_epoch": best["epoch"], "history": history,
        "optimizer": f"Adam lr {args.lr}, batch {args.batch_size}",
    }
    card.save(args.out)
    table[["Image Index", "Patient ID", "split"]].to_csv(args.out / "training_images.csv", index=False)
    test = table.loc[parts["test"]]
    (args.out / "test_images.txt").write_text("\n".join(test["Image Index"]) + "\n")

    report = evaluate_held_out(args.out, args.images, table.loc[parts["test"]], y_all[parts["test"]])
    print(json.dumps({"mean_auc_findings": report["mean_auc_findings"],
                      "mean_auc_15_labels": report["mean_auc_15_labels"]}), flush=True)
    return 0


def evaluate_held_out(out: Path, images: Path, test: pd.DataFrame, y_test: np.ndarray) -> dict:
    """Score the held-out patients with the engine (TTA) and write the report into the card.

    Uses core.evaluate's own functions, so ``python -m core.evaluate --only
    test_images.txt`` reproduces the card's numbers.
    """
    from core.evaluate import evaluation_report, predict_folder
    from core.inference import InferenceEngine
    from core.model_card import ModelCard

    engine = InferenceEngine(out)
    p_test = predict_folder(engine, list(test["path"]))
    report = evaluation_report(y_test, p_test, test["Patient ID"].astype(str).to_numpy())
    report["split"] = "held-out test patients (never seen in training or threshold choice)"
    report["tta_views"] = len(engine.views)
    report["reproduce"] = (f"python -m core.evaluate --images <{images.name} folder> --labels <label CSV> "
                           f"--only {out.as_posix()}/test_images.txt --json")
    card = ModelCard.load(out)
    card.evaluation = report
    card.save(out)
    return report


def evaluate_only(out: Path, images: Path, labels: Path) -> int:
    """Recompute the held-out evaluation of a finished model folder."""
    from core.evaluate import matched_table

    names = set((out / "test_images.txt").read_text().split())
    table = matched_table(images, labels)
    test = table[table["Image Index"].isin(names)].reset_index(drop=True)
    y = np.stack([label_vector(t) for t in test["Finding Labels"]])
    report = evaluate_held_out(out, images, test, y)
    print(json.dumps({"mean_auc_findings": report["mean_auc_findings"], "n_images": report["n_images"]}))
    return 0


def _sizes(paths) -> list[tuple[int, int]]:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.size)
    return out


if __name__ == "__main__":
    sys.exit(main())
