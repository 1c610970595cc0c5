"""Refit the model's head on the site's own reads, from the features kept at analysis.

The head is one dense layer on the trunk's pooled features (logit = x . w + b). For each
label with enough site positives, a logistic regression is fitted on the site's training
patients with the parent head's logit as one more input: the fit starts from what the
parent knows and moves only as far as the site's reads carry it, and because the parent
logit is itself linear in x the result folds back into one dense layer
(w' = w_new + c w_parent, b' = b_new + c b_parent). Its L2 strength is chosen on the site's
validation patients, and the parent's column is kept when the refit is not better there.
A label with too few site positives keeps the parent's column, and says so. Calibration
(Platt) and thresholds (sensitivity >= 0.80) then come from the validation patients.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from core.calibration import fit_platt, sigmoid
from core.metrics import threshold_for_sensitivity

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
MIN_POSITIVES = 10  # in the training part and in the validation part


@dataclass(frozen=True)
class LabelFit:
    label: str
    action: str  # "refit" or "kept"
    reason: str
    c: float | None
    validation_auc_parent: float | None
    validation_auc_new: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SiteHead:
    kernel: np.ndarray  # (K, L) float32
    bias: np.ndarray  # (L,) float32
    fits: list[LabelFit]
    calibration: dict[str, dict[str, float]]
    thresholds: dict[str, float]
    threshold_support: dict[str, int]


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def _refit_label(x_tr, z_tr, y_tr, x_va, z_va, y_va) -> tuple[float, np.ndarray, float, float] | None:
    """(C, w over [x, z_parent], intercept, validation AUC) of the best C, or None."""
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-6
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        model.fit(np.column_stack([(x_tr - mean) / std, z_tr]), y_tr)
        val = model.decision_function(np.column_stack([(x_va - mean) / std, z_va]))
        auc = _auc(y_va, val)
        if auc is not None and (best is None or auc > best[3]):
            coef = model.coef_[0]
            w_x = coef[:-1] / std  # back to raw feature units
            intercept = float(model.intercept_[0] - (coef[:-1] * mean / std).sum())
            best = (c, np.append(w_x, coef[-1]), intercept, auc)
    return best


def fit_site_head(
    labels: tuple[str, ...],
    parent_kernel: np.ndarray,
    parent_bias: np.ndarray,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    min_positives: int = MIN_POSITIVES,
) -> SiteHead:
    """``train`` and ``validation`` are (features (n, K), truth (n, L) 0/1) of the site's
    parts; the held-out part is not an argument, so it cannot be used."""
    (x_tr, y_tr), (x_va, y_va) = ((np.asarray(x, np.float64), np.asarray(y)) for x, y in (train, validation))
    kernel, bias = np.array(parent_kernel, np.float64), np.array(parent_bias, np.float64)
    z_tr, z_va = x_tr @ kernel + bias, x_va @ kernel + bias
    new_kernel, new_bias, fits = kernel.copy(), bias.copy(), []
    for j, label in enumerate(labels):
        pos_tr, pos_va = int(y_tr[:, j].sum()), int(y_va[:, j].sum())
        parent_auc = _auc(y_va[:, j], z_va[:, j])
        if min(pos_tr, pos_va) < min_positives:
            reason = f"{pos_tr} training and {pos_va} validation positives at the site (fewer than {min_positives})"
            fits.append(LabelFit(label, "kept", reason, None, parent_auc, None))
            continue
        best = _refit_label(x_tr, z_tr[:, j], y_tr[:, j], x_va, z_va[:, j], y_va[:, j])
        if best is None or parent_auc is None or best[3] <= parent_auc:
            reason = "the refit was not better on the site's validation patients"
            fits.append(
                LabelFit(label, "kept", reason, best[0] if best else None, parent_auc, best[3] if best else None)
            )
            continue
        c, w, intercept, auc = best
        new_kernel[:, j] = w[:-1] + w[-1] * kernel[:, j]
        new_bias[j] = intercept + w[-1] * bias[j]
        fits.append(LabelFit(label, "refit", f"validation AUC {parent_auc:.3f} -> {auc:.3f}", c, parent_auc, auc))
    probs_va = sigmoid(x_va @ new_kernel + new_bias)
    calibration, thresholds, support = {}, {}, {}
    for j, label in enumerate(labels):
        platt = fit_platt(y_va[:, j], probs_va[:, j])
        calibration[label] = platt.to_dict()
        calibrated = platt.apply(probs_va[:, j])
        found = threshold_for_sensitivity(y_va[:, j], calibrated, 0.8)
        thresholds[label] = float(found) if found is not None else 0.5
        support[label] = int(y_va[:, j].sum())
    return SiteHead(new_kernel.astype(np.float32), new_bias.astype(np.float32), fits, calibration, thresholds, support)
