"""The paired comparison of a candidate with the current model on the same patients: per
label and mean AUC over findings with their differences (patient bootstrap 95% interval,
DeLong's p), abnormal-vs-normal AUC, calibration error and flags per study at each model's
own thresholds. Plain numbers in, a JSON-ready dict out."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from core.calibration import expected_calibration_error
from core.labels import NO_FINDING
from core.paired import comparable, mean_auc_difference, paired_auc


def compare(
    labels: tuple[str, ...],
    truth: np.ndarray,
    current: np.ndarray,
    candidate: np.ndarray,
    current_thresholds: np.ndarray,
    candidate_thresholds: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """``truth``, ``current``, ``candidate``: (n studies, L) in ``labels`` order; scores are
    calibrated probabilities; thresholds (L,)."""
    truth = np.asarray(truth).astype(bool)
    findings = [j for j, label in enumerate(labels) if label != NO_FINDING]
    per_label = {}
    for j in findings:
        if comparable(truth[:, j]):
            per_label[labels[j]] = asdict(paired_auc(truth[:, j], current[:, j], candidate[:, j], groups, n_boot, seed))
    out: dict = {"studies": int(len(truth)), "per_label": per_label}
    if per_label:
        mean = mean_auc_difference(
            truth[:, findings],
            current[:, findings],
            candidate[:, findings],
            tuple(labels[j] for j in findings),
            groups,
            n_boot,
            seed,
        )
        out["mean_auc_findings"] = asdict(mean)
    if NO_FINDING in labels:
        nf = labels.index(NO_FINDING)
        abnormal = ~truth[:, nf]
        if comparable(abnormal):
            out["abnormal_vs_normal"] = asdict(
                paired_auc(abnormal, 1 - current[:, nf], 1 - candidate[:, nf], groups, n_boot, seed)
            )
    out["calibration_error"] = {
        "current": _mean_ece(truth, current),
        "candidate": _mean_ece(truth, candidate),
    }
    out["flags_per_study"] = {
        "current": float((current >= current_thresholds).sum(axis=1).mean()) if len(truth) else None,
        "candidate": float((candidate >= candidate_thresholds).sum(axis=1).mean()) if len(truth) else None,
    }
    return out


def _mean_ece(truth: np.ndarray, probs: np.ndarray) -> float | None:
    values = [
        expected_calibration_error(truth[:, j], probs[:, j]) for j in range(truth.shape[1]) if 0 < truth[:, j].sum()
    ]
    return float(np.mean(values)) if values else None
