"""After fitting: thresholds at a target sensitivity on validation patients, temperature
calibration, the out-of-domain gate, and the held-out evaluation written into the card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from core.labels import LABELS, NO_FINDING, label_vector
from training.probe import mean_auc


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


def sizes(paths) -> list[tuple[int, int]]:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.size)
    return out
