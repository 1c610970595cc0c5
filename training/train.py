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

from core.labels import LABELS, label_vector
from training.calibrate import calibrate_and_evaluate, evaluate_only, sizes
from training.images import augment_fn, load_images, sampling_weights, to_model_input
from training.probe import PROBE_C_GRID, choose_probe_c, fit_probe, mean_auc, pooled_features
from training.splits import official_split, patient_split


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
        "source_resolution": sorted({f"{w}x{h}" for w, h in sizes(table["path"])}),
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
