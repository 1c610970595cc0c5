"""Two models scored on the same images, compared fairly: the AUC difference with DeLong's
paired test (DeLong, DeLong & Clarke-Pearson 1988, in Sun & Xu's 2014 fast form) and a
95% interval from resampling whole patients, so a patient with several images counts once.
Used to judge a retrained candidate against the current model on the site's held-out
patients (and on the project's own held-out NIH images: nothing forgotten)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from core.metrics import bootstrap_aucs, group_index, group_weights, score_bins


@dataclass(frozen=True)
class PairedAUC:
    """Current (a) against candidate (b) on the same images: b - a, its 95% patient
    bootstrap interval and DeLong's two-sided p-value."""

    auc_a: float
    auc_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    positives: int
    negatives: int


def comparable(y: np.ndarray) -> bool:
    """DeLong's variance needs at least two positives and two negatives."""
    positives = int(np.asarray(y).astype(bool).sum())
    return 2 <= positives <= len(y) - 2


def _bootstrap_difference(y, a, b, gidx: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of b minus AUC of a on each resample (the same resamples for both models)."""
    a, b = np.asarray(a), np.asarray(b)
    return bootstrap_aucs(y, b, gidx, weights, score_bins(b)[:2]) - bootstrap_aucs(
        y, a, gidx, weights, score_bins(a)[:2]
    )


def delong_paired(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """(AUC of a, AUC of b, variance of b - a, two-sided p of H0: equal AUCs)."""
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if not comparable(y):
        raise ValueError("DeLong's test needs at least two positives and two negatives")
    scores = np.vstack([a, b]).astype(np.float64)
    pos, neg = scores[:, y], scores[:, ~y]
    # midranks within positives, within negatives and overall (ties count half)
    tx = np.apply_along_axis(rankdata, 1, pos)
    ty = np.apply_along_axis(rankdata, 1, neg)
    tz = np.apply_along_axis(rankdata, 1, np.hstack([pos, neg]))
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v01 = (tz[:, :m] - tx) / n  # structural components of the positives
    v10 = 1.0 - (tz[:, m:] - ty) / m  # of the negatives
    cov = np.cov(v01) / m + np.cov(v10) / n
    contrast = np.array([-1.0, 1.0])
    var = float(contrast @ cov @ contrast)
    diff = float(aucs[1] - aucs[0])
    if var <= 0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float(2 * norm.sf(abs(diff) / np.sqrt(var)))
    return float(aucs[0]), float(aucs[1]), var, p


def paired_auc(
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedAUC:
    """AUC difference b - a on the same images, with the patient bootstrap interval (both
    models scored on each resample) and DeLong's p."""
    y = np.asarray(y).astype(bool)
    auc_a, auc_b, _, p = delong_paired(y, a, b)
    gidx, g = group_index(groups, len(y))
    weights = group_weights(g, n_boot, np.random.default_rng(seed))
    low, high = np.nanpercentile(_bootstrap_difference(y, a, b, gidx, weights), [2.5, 97.5])
    return PairedAUC(auc_a, auc_b, auc_b - auc_a, float(low), float(high), p, int(y.sum()), int((~y).sum()))


@dataclass(frozen=True)
class MeanAUCDifference:
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    labels: tuple[str, ...]  # the findings averaged (those with positives and negatives)


def mean_auc_difference(
    truth: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    labels: tuple[str, ...],
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> MeanAUCDifference:
    """Mean AUC over findings, b against a, with one set of patient resamples shared by
    every finding (so the interval reflects the findings' correlation)."""
    truth = np.asarray(truth).astype(bool)
    usable = [j for j in range(truth.shape[1]) if comparable(truth[:, j])]
    if not usable:
        raise ValueError("no finding has both positives and negatives")
    gidx, g = group_index(groups, len(truth))
    weights = group_weights(g, n_boot, np.random.default_rng(seed))
    point_a, point_b, boot = [], [], []
    for j in usable:
        ya, yb = delong_paired(truth[:, j], a[:, j], b[:, j])[:2]
        point_a.append(ya)
        point_b.append(yb)
        boot.append(_bootstrap_difference(truth[:, j], a[:, j], b[:, j], gidx, weights))
    stacked = np.vstack(boot)
    seen = ~np.isnan(stacked)
    # a resample in which no finding has both classes says nothing; it is left out
    diffs = np.where(seen, stacked, 0.0).sum(axis=0)[seen.any(axis=0)] / seen.sum(axis=0)[seen.any(axis=0)]
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    mean_a, mean_b = float(np.mean(point_a)), float(np.mean(point_b))
    return MeanAUCDifference(mean_a, mean_b, mean_b - mean_a, float(low), float(high), tuple(labels[j] for j in usable))
