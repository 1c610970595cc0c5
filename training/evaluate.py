"""Score a model on labelled images: per-label AUC with patient-level bootstrap CIs.

``cxr evaluate --images DIR --labels CSV --json`` prints the report that the
training pipeline also writes into the model card, computed by the same function.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from core.labels import FINDINGS, LABELS, NO_FINDING, label_vector, read_label_table
from core.metrics import auc_ci


def evaluation_report(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray | None, n_boot: int = 1000, seed: int = 0
) -> dict:
    """Per-label AUC (95% CI), counts, means over findings and over all 15, abnormal AUC."""
    per_label = {}
    for j, label in enumerate(LABELS):
        ci = auc_ci(y[:, j], p[:, j], groups=groups, n_boot=n_boot, seed=seed + j)
        per_label[label] = {
            "auc": _round(ci.value),
            "ci95": [_round(ci.low), _round(ci.high)],
            "n_positive": int(y[:, j].sum()),
            "n_negative": int(len(y) - y[:, j].sum()),
        }
    aucs = {lab: cast(float | None, per_label[lab]["auc"]) for lab in LABELS}
    findings = [a for f in FINDINGS if (a := aucs[f]) is not None]
    all15 = [a for lab in LABELS if (a := aucs[lab]) is not None]
    nf = LABELS.index(NO_FINDING)
    abnormal = auc_ci(1 - y[:, nf], 1 - p[:, nf], groups=groups, n_boot=n_boot, seed=seed + 99)
    mean_ci = mean_auc_ci(
        y[:, [LABELS.index(f) for f in FINDINGS]],
        p[:, [LABELS.index(f) for f in FINDINGS]],
        groups,
        n_boot=n_boot,
        seed=seed + 7,
    )
    return {
        "mean_auc_findings_ci95": mean_ci,
        "n_images": int(len(y)),
        "n_patients": int(len(np.unique(groups))) if groups is not None else None,
        "per_label": per_label,
        "mean_auc_findings": _round(float(np.mean(findings))) if findings else None,
        "n_findings_with_positives": len(findings),
        "mean_auc_15_labels": _round(float(np.mean(all15))) if all15 else None,  # of the 15 with positives
        "abnormal_vs_no_finding_auc": _round(abnormal.value),
        "abnormal_vs_no_finding_ci95": [_round(abnormal.low), _round(abnormal.high)],
        "bootstrap": f"{n_boot} resamples, {'by patient' if groups is not None else 'by image'}, percentile 95% CI",
    }


def mean_auc_ci(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray | None, n_boot: int = 1000, seed: int = 0
) -> list[float | None]:
    """Percentile 95% CI of the mean AUC over labels, resampling whole patients: each
    resample's mean is over the labels that have both classes in it."""
    from scipy.stats import rankdata

    def auc(yy: np.ndarray, pp: np.ndarray) -> float:  # Mann-Whitney with tied ranks = ROC AUC
        n1 = int(yy.sum())
        n0 = len(yy) - n1
        if n1 == 0 or n0 == 0:
            return float("nan")
        return float((rankdata(pp)[yy > 0].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))

    rng = np.random.default_rng(seed)
    keys = np.asarray(groups) if groups is not None else np.arange(len(y))
    uniq, inverse = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    means = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        values = [auc(y[idx, j], p[idx, j]) for j in range(y.shape[1])]
        values = [v for v in values if not np.isnan(v)]
        if values:
            means.append(np.mean(values))
    if not means:
        return [None, None]
    return [_round(float(np.percentile(means, 2.5))), _round(float(np.percentile(means, 97.5)))]


def _round(x: float) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 4)


def predict_folder(analyzer, paths: list[Path], batch_size: int = 16) -> np.ndarray:
    """TTA probabilities (n, 15) for files, decoded exactly as the worker decodes them."""
    from core.decode import decode_bytes

    out = []
    for start in range(0, len(paths), batch_size):
        images = [decode_bytes(p.read_bytes()).pixels for p in paths[start : start + batch_size]]
        out.extend([[a.probabilities[lab] for lab in LABELS] for a in analyzer.analyse(images)])
    return np.asarray(out, dtype=np.float64)


def matched_table(images_dirs: Path | list[Path], labels_csv: Path) -> pd.DataFrame:
    """Label rows whose Image Index exists in one of ``images_dirs``, sorted by name.

    An image present in several folders is taken from the first (``source`` names it).
    """
    table = read_label_table(labels_csv)
    dirs = [images_dirs] if isinstance(images_dirs, (str, Path)) else list(images_dirs)
    present: dict[str, Path] = {}
    for folder in dirs:
        for p in sorted(Path(folder).iterdir()):
            if p.is_file():
                present.setdefault(p.name, p)
    table = table[table["Image Index"].isin(present)].copy()
    table["path"] = table["Image Index"].map(present)
    table["source"] = table["path"].map(lambda p: p.parent.name)
    return table.sort_values("Image Index").reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    from core.config import load_settings

    parser = argparse.ArgumentParser(prog="cxr evaluate")
    parser.add_argument("--images", required=True, type=Path, nargs="+", help="one or more image folders")
    parser.add_argument("--labels", required=True, type=Path, help="NIH-format CSV (Image Index, Finding Labels)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: CXR_MODEL)")
    parser.add_argument("--only", type=Path, default=None, help="text file of Image Index names to score")
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from core.inference import Analyzer

    table = matched_table(args.images, args.labels)
    if args.only:
        keep = {line.strip() for line in args.only.read_text().splitlines() if line.strip()}
        table = table[table["Image Index"].isin(keep)].reset_index(drop=True)
    if table.empty:
        print("no labelled images found in the folder", file=sys.stderr)
        return 2
    analyzer = Analyzer(args.model or load_settings().model_dir, views=["identity"] if args.no_tta else None)
    p = predict_folder(analyzer, list(table["path"]))
    y = np.stack([label_vector(t) for t in table["Finding Labels"]])
    groups = table["Patient ID"].astype(str).to_numpy() if "Patient ID" in table else None
    report = evaluation_report(y, p, groups, n_boot=args.bootstrap)
    report["model"] = {"name": analyzer.card.name, "version": analyzer.card.version}
    report["tta_views"] = len(analyzer.views)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for label, row in report["per_label"].items():
            print(
                f"{label:20s} AUC {row['auc']}  95% CI {row['ci95']}  pos {row['n_positive']} neg {row['n_negative']}"
            )
        print(f"mean AUC over findings with positives: {report['mean_auc_findings']}")
        print(f"abnormal vs No Finding AUC: {report['abnormal_vs_no_finding_auc']}")
    return 0
