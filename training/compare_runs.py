"""Compare trained model folders on the same held-out test patients.

``cxr compare-runs --images DIR... --labels CSV RUN_DIR... [--into MODEL_DIR]``
scores each run's test images (its own ``test_images.txt``; runs on one split share it)
with the analyzer as deployed (TTA, calibration), and prints one row per run: held-out
mean AUC over findings with its patient-bootstrap 95% CI, abnormal-versus-normal AUC,
the same on the full-quality images alone, validation figures, training time. With
``--into`` the table is stored in that model's card (``training.runs_compared``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def compare(run: Path, images: list[Path], labels: Path) -> dict:
    import pandas as pd

    from core.inference import Analyzer
    from core.labels import label_vector
    from training.evaluate import evaluation_report, matched_table, predict_folder

    analyzer = Analyzer(run)
    card = analyzer.card
    split = pd.read_csv(run / "training_images.csv").set_index("Image Index")["split"]
    table = matched_table(images, labels)
    table["split"] = table["Image Index"].map(split)
    val = _figures(analyzer, table[table["split"] == "val"].reset_index(drop=True))
    test = table[table["split"] == "test"].reset_index(drop=True)
    y = np.stack([label_vector(t) for t in test["Finding Labels"]])
    p = predict_folder(analyzer, list(test["path"]))
    groups = test["Patient ID"].astype(str).to_numpy()
    full = evaluation_report(y, p, groups)
    mask = (test["source"] != "small64").to_numpy()
    hq = evaluation_report(y[mask], p[mask], groups[mask])
    training = card.training
    return {
        "run": card.name,
        "folder": run.name,
        "backbone": card.backbone,
        "initialisation": "ImageNet" if "ImageNet" in training.get("initialisation", "") else "random",
        "recipe": (
            "linear probe" + (" + batch-norm adaptation" if training.get("batch_norm_adapted") else "")
            if training.get("best_epoch") == 0
            else f"trained, best epoch {training.get('best_epoch')}"
        ),
        "learnt from": ", ".join(training.get("learnt_from_sources", [])),
        "val mean AUC": val["all"][0],
        "val abnormal AUC": val["all"][1],
        "val mean AUC, full quality": val["full"][0],
        "val abnormal AUC, full quality": val["full"][1],
        "test mean AUC": full["mean_auc_findings"],
        "test 95% CI": full["mean_auc_findings_ci95"],
        "test abnormal AUC": full["abnormal_vs_no_finding_auc"],
        "full-quality test mean AUC": hq["mean_auc_findings"],
        "full-quality 95% CI": hq["mean_auc_findings_ci95"],
        "full-quality abnormal AUC": hq["abnormal_vs_no_finding_auc"],
        "per-label test AUC": {k: v["auc"] for k, v in full["per_label"].items()},
        "training minutes (2-core CPU)": round(training.get("training_seconds", 0) / 60, 1),
    }


def _figures(analyzer, frame) -> dict[str, tuple[float, float]]:
    """(mean AUC over findings, abnormal AUC) of the validation images, all and full quality."""
    from core.labels import label_vector
    from training.evaluate import evaluation_report, predict_folder

    y = np.stack([label_vector(t) for t in frame["Finding Labels"]])
    p = predict_folder(analyzer, list(frame["path"]))
    out = {}
    for key, mask in (("all", np.ones(len(frame), bool)), ("full", (frame["source"] != "small64").to_numpy())):
        r = evaluation_report(y[mask], p[mask], None, n_boot=10)
        out[key] = (r["mean_auc_findings"], r["abnormal_vs_no_finding_auc"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr compare-runs")
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--images", nargs="+", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--into", type=Path, nargs="*", default=[], help="store the table in these model cards")
    args = parser.parse_args(argv)
    rows = [compare(run, args.images, args.labels) for run in args.runs]
    print(json.dumps(rows, indent=2))
    for folder in args.into:
        from core.model_card import ModelCard

        card = ModelCard.load(folder)
        card.training["runs_compared"] = [{k: v for k, v in r.items() if k != "per-label test AUC"} for r in rows]
        card.training["runs_compared_per_label"] = {r["folder"]: r["per-label test AUC"] for r in rows}
        card.save(folder)
    return 0
