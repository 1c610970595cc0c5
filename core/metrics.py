"""Classification metrics over arrays: ROC, AUC with bootstrap CIs, operating points.

Pure functions (no database, no Streamlit). AUC and ROC points come from scikit-learn;
the bootstrap is vectorised as a weighted Mann-Whitney statistic so thousands of
resamples of 100,000 studies stay fast. Resampling is by patient when groups are given,
because images of one patient are not independent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present (AUC is undefined then)."""
    y = np.asarray(y_true).astype(int)
    if y.min(initial=0) == y.max(initial=0):
        return float("nan")
    return float(roc_auc_score(y, scores))


def roc_points(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fpr, tpr, thr = roc_curve(np.asarray(y_true).astype(int), scores)
    return fpr, tpr, thr


def pr_points(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return precision_recall_curve(np.asarray(y_true).astype(int), scores)


def _weighted_auc(y_sorted: np.ndarray, group_starts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of ``weights`` (B, n), samples pre-sorted by score with tie groups."""
    pos_w = weights * y_sorted
    neg_w = weights * (1 - y_sorted)
    pos_g = np.add.reduceat(pos_w, group_starts, axis=1)
    neg_g = np.add.reduceat(neg_w, group_starts, axis=1)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    num = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1)
    den = pos_g.sum(axis=1) * neg_g.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def bootstrap_weights(n: int, n_boot: int, groups: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resampling counts, whole patients at a time when ``groups`` is given."""
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    _, idx = np.unique(np.asarray(groups), return_inverse=True)
    g = int(idx.max()) + 1
    counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(np.float64)
    return counts[:, idx]


def auc_ci(y_true: np.ndarray, scores: np.ndarray, groups: np.ndarray | None = None, n_boot: int = 1000,
           level: float = 0.95, seed: int = 0, weights: np.ndarray | None = None) -> Interval:
    """AUC with a percentile bootstrap CI (cluster bootstrap by ``groups``)."""
    y = np.asarray(y_true).astype(np.float64)
    s = np.asarray(scores, dtype=np.float64)
    point = auc(y, s)
    if np.isnan(point):
        return Interval(point, float("nan"), float("nan"))
    order = np.argsort(s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    if weights is None:
        rng = np.random.default_rng(seed)
        weights = bootstrap_weights(len(y), n_boot, groups, rng)
    boots = _weighted_auc(y_sorted, starts, weights[:, order])
    boots = boots[~np.isnan(boots)]
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha]) if boots.size else (np.nan, np.nan)
    return Interval(point, float(low), float(high))


def wilson(successes: int, total: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (better than Wald at small n or p near 0/1)."""
    if total <= 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return Interval(p, float(max(0.0, centre - half)), float(min(1.0, centre + half)))


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def sensitivity(self) -> Interval:
        return wilson(self.tp, self.tp + self.fn)

    def specificity(self) -> Interval:
        return wilson(self.tn, self.tn + self.fp)

    def ppv(self) -> Interval:
        return wilson(self.tp, self.tp + self.fp)

    def npv(self) -> Interval:
        return wilson(self.tn, self.tn + self.fn)

    def false_positive_rate(self) -> Interval:
        """FP / (FP + TN): the share of true negatives that the model flags."""
        return wilson(self.fp, self.fp + self.tn)

    def false_discovery_rate(self) -> Interval:
        """FP / (FP + TP) = 1 - PPV: the share of the model's positive calls that are wrong."""
        return wilson(self.fp, self.fp + self.tp)


def confusion_at(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> Confusion:
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(scores) >= threshold
    return Confusion(int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & ~y).sum()), int((~pred & y).sum()))


def threshold_for_sensitivity(y_true: np.ndarray, scores: np.ndarray, target: float = 0.8) -> float | None:
    """The highest threshold whose sensitivity (score >= t) reaches ``target``.

    Highest, because among thresholds that meet the recall target it flags the fewest
    negatives. None when there are no positives to measure sensitivity on.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    pos = np.sort(s[y])[::-1]
    if pos.size == 0:
        return None
    k = int(np.ceil(target * pos.size))  # need at least k positives at or above t
    return float(pos[max(k, 1) - 1])


def threshold_for_specificity(y_true: np.ndarray, scores: np.ndarray, target: float = 0.8) -> float | None:
    """The lowest threshold whose specificity reaches ``target``."""
    y = np.asarray(y_true).astype(bool)
    neg = np.sort(np.asarray(scores, dtype=np.float64)[~y])
    if neg.size == 0:
        return None
    k = int(np.ceil(target * neg.size))  # at least k negatives strictly below t
    if k >= neg.size:
        return float(np.nextafter(neg[-1], np.inf))
    return float(np.nextafter(neg[k - 1], np.inf)) if k > 0 else float(neg[0])


def threshold_youden(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Threshold maximising sensitivity + specificity - 1."""
    y = np.asarray(y_true).astype(int)
    if y.min(initial=0) == y.max(initial=0):
        return None
    fpr, tpr, thr = roc_curve(y, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> tuple[float, dict]:
    """ECE with equal-width bins, and the per-bin table for a reliability diagram."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf = np.bincount(idx, weights=p, minlength=n_bins)
    acc = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf / count, np.nan)
        frac_pos = np.where(count > 0, acc / count, np.nan)
    ece = float(np.nansum(count / max(1, len(y)) * np.abs(mean_conf - frac_pos)))
    return ece, {"bin_low": edges[:-1], "bin_high": edges[1:], "count": count,
                 "mean_predicted": mean_conf, "fraction_positive": frac_pos}
