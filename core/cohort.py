"""Cohort ground truth and per-finding metrics over arrays (no database, no Streamlit).

A cohort is n studies x L labels (the model card's labels, in its order): probabilities,
the thresholds each prediction was made with, and truth (1 present, 0 absent, NaN unknown). Truth comes from reviewers'
verdicts or from imported reference labels. Reviewers can disagree; the rule is explicit:

- ``majority``: the majority of reviewers; a tie is settled by an adjudicator's verdict
  when one exists, otherwise the label stays unknown (excluded, not guessed).
- ``adjudicator``: an adjudicator's verdict (an admin who settled disagreeing reads) wins;
  otherwise the majority.
- ``reviewer``: only the chosen reviewer's verdicts count.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from core.labels import LABELS as NIH_LABELS
from core.metrics import auc_ci, confusion_at, group_counts, group_index, roc_band


class TruthRule(StrEnum):
    """How disagreeing readers' verdicts become one truth (see the module's docstring)."""

    MAJORITY = "majority"
    ADJUDICATOR = "adjudicator"
    REVIEWER = "reviewer"


class TruthSource(StrEnum):
    """Where a cohort's truth comes from."""

    VERDICTS = "verdicts"  # the site's readers
    REFERENCE = "reference"  # labels imported with the images (cxr labels import)


RULES = tuple(r.value for r in TruthRule)


@dataclass
class Cohort:
    study_ids: np.ndarray  # (n,)
    probs: np.ndarray  # (n, 15)
    thresholds: np.ndarray  # (n, 15)
    truth: np.ndarray  # (n, 15): 1.0, 0.0 or NaN
    groups: np.ndarray  # (n,) patient key, or a per-study key where unknown
    meta: pd.DataFrame  # one row per study, same order: original_name, created_at, view_position, ...
    labels: tuple[str, ...] = ()  # column order of probs, thresholds and truth

    def label(self, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(y, scores, thresholds, study positions) of the studies with known truth and a score."""
        j = self.labels.index(label)
        known = ~np.isnan(self.truth[:, j]) & ~np.isnan(self.probs[:, j])
        return self.truth[known, j] > 0.5, self.probs[known, j], self.thresholds[known, j], np.flatnonzero(known)


def truth_from_votes(
    study_pos: np.ndarray,
    present: np.ndarray,
    n: int,
    rule: str = "majority",
    reviewer_ids: np.ndarray | None = None,
    chosen: int | None = None,
    adjudicator: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """Combine reviewers' verdicts into (n, L) truth.

    study_pos: (m,) position of the study of each reviewer's verdict set; present: (m, L)
    bool; known: (m, L) bool, False where a verdict set has no verdict for a label (it was
    written under another label set; default all known); adjudicator: (m,) bool.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}")
    present = np.asarray(present, dtype=bool).reshape(len(study_pos), -1)
    n_labels = present.shape[1]
    known = np.ones_like(present) if known is None else np.asarray(known, dtype=bool)
    votes = np.where(known, present.astype(np.float64), np.nan)  # (m, L): 1, 0 or NaN
    truth = np.full((n, n_labels), np.nan)
    if len(study_pos) == 0:
        return truth
    if rule == TruthRule.REVIEWER:
        if chosen is None or reviewer_ids is None:
            raise ValueError("the 'reviewer' rule needs a reviewer")
        mine = np.asarray(reviewer_ids) == chosen
        truth[study_pos[mine]] = votes[mine]
        return truth
    count = np.stack([np.bincount(study_pos, weights=known[:, j], minlength=n) for j in range(n_labels)], axis=1)
    pos = np.stack(
        [np.bincount(study_pos, weights=present[:, j] & known[:, j], minlength=n) for j in range(n_labels)], axis=1
    )
    neg = count - pos
    majority = np.where(pos > neg, 1.0, np.where(pos < neg, 0.0, np.nan))
    majority[count == 0] = np.nan
    adj = np.full((n, n_labels), np.nan)
    if adjudicator is not None and np.any(adjudicator):
        a = np.asarray(adjudicator, dtype=bool)
        adj[study_pos[a]] = votes[a]
    if rule == TruthRule.ADJUDICATOR:
        return np.where(~np.isnan(adj), adj, majority)
    return np.where(np.isnan(majority), adj, majority)


def truth_from_finding_labels(texts: list[str | None], labels: tuple[str, ...]) -> np.ndarray:
    """(n, L) truth from NIH 'Finding Labels' strings; None (no reference) is unknown, and
    so is a label the NIH table does not know."""
    out = np.full((len(texts), len(labels)), np.nan)
    nih = np.array([lab in NIH_LABELS for lab in labels])
    for i, text in enumerate(texts):
        if text is None or (isinstance(text, float) and np.isnan(text)):
            continue
        names = {t.strip() for t in str(text).split("|")}
        out[i] = np.where(nih, [1.0 if lab in names else 0.0 for lab in labels], np.nan)
    return out


def default_boot_count(n: int) -> int:
    """1000 resamples up to 2,500 studies; fewer above (500 at 5,000, 200 from 12,500),
    where the interval is already narrow and the cost grows with n x resamples; the page
    states the number used."""
    return int(min(1000, max(200, 2_500_000 // max(1, n))))


@dataclass(frozen=True)
class Resampling:
    """One set of bootstrap resamples of a cohort's patients, shared by every finding's
    AUC interval and ROC band: ``weights`` (B, G) counts of each patient group in each
    resample (uint8 where they fit: a quarter of float32's memory in a cache), ``gidx`` each
    study's group."""

    weights: np.ndarray
    gidx: np.ndarray

    @property
    def n_boot(self) -> int:
        return int(self.weights.shape[0])

    def float_weights(self) -> np.ndarray:
        """The counts as float32 for the sparse products (converted once per use)."""
        return self.weights if self.weights.dtype == np.float32 else self.weights.astype(np.float32)


def resampling(cohort: Cohort, n_boot: int | None = None, seed: int = 0) -> Resampling:
    n = len(cohort.study_ids)
    boots = n_boot or default_boot_count(n)
    gidx, g = group_index(cohort.groups, n)
    return Resampling(group_counts(g, boots, np.random.default_rng(seed)), gidx)


def finding_roc_band(cohort: Cohort, label: str, shared: Resampling) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A finding's pointwise 95% ROC band from the cohort's shared resamples."""
    y, s, _, where = cohort.label(label)
    return roc_band(y, s, weights=shared.float_weights(), gidx=shared.gidx[where])


def finding_table(
    cohort: Cohort, n_boot: int | None = None, seed: int = 0, shared: Resampling | None = None
) -> pd.DataFrame:
    """Per finding: n, prevalence, AUC with bootstrap CI, and the operating point at each
    prediction's own threshold (sensitivity, specificity, PPV, NPV with Wilson intervals,
    the false-positive rate and the share of positive calls that are wrong).

    One set of resampling weights (by patient) is drawn for the cohort and shared by all
    findings, so their intervals describe the same resampled cohorts.
    """
    shared = shared or resampling(cohort, n_boot, seed)
    weights, gidx = shared.float_weights(), shared.gidx
    rows = []
    for label in cohort.labels:
        y, s, t, where = cohort.label(label)
        if y.size == 0:
            continue
        ci = auc_ci(y, s, weights=weights, gidx=gidx[where])
        conf = confusion_at(y, s, t)  # each prediction at the threshold it was made with
        row = {
            "finding": label,
            "n": int(y.size),
            "positives": int(y.sum()),
            "negatives": int((~y).sum()),
            "prevalence": float(y.mean()),
            "auc": ci.value,
            "auc_low": ci.low,
            "auc_high": ci.high,
            "tp": conf.tp,
            "fp": conf.fp,
            "tn": conf.tn,
            "fn": conf.fn,
        }
        for name, interval in (
            ("sensitivity", conf.sensitivity()),
            ("specificity", conf.specificity()),
            ("ppv", conf.ppv()),
            ("npv", conf.npv()),
        ):
            row.update({name: interval.value, f"{name}_low": interval.low, f"{name}_high": interval.high})
        row["false_positive_rate"] = conf.false_positive_rate().value
        row["wrong_share_of_positive_calls"] = conf.false_discovery_rate().value
        rows.append(row)
    return pd.DataFrame(rows)


def false_positives(cohort: Cohort) -> pd.DataFrame:
    """(study_id, label, probability, threshold) flagged by the model where truth is absent."""
    flagged = cohort.probs >= cohort.thresholds
    absent = cohort.truth == 0.0
    i, j = np.nonzero(flagged & absent)
    return pd.DataFrame(
        {
            "study_id": cohort.study_ids[i],
            "label": np.asarray(cohort.labels, dtype=object)[j],
            "probability": cohort.probs[i, j],
            "threshold": cohort.thresholds[i, j],
        }
    )


def false_positive_studies(cohort: Cohort, fps: pd.DataFrame, details: pd.DataFrame) -> pd.DataFrame:
    """One row per study with a false positive: its ``details`` (one row per study with an
    ``id`` and a ``patient_age``: db.analytics.study_details), the findings wrong on it and
    its age band (indexed by study id).

    The findings' text is made once per distinct set of wrong findings (a bit mask per
    study), not once per study: a few hundred sets cover 100,000 studies."""
    studies = details.set_index("id")
    if fps.empty:
        table = studies.iloc[:0].copy()
        table["false-positive findings"] = pd.Series(dtype=object)
        table["age band"] = pd.Series(dtype=object)
        return table
    order = np.argsort(np.asarray(cohort.labels, dtype=object))  # findings named alphabetically
    names = np.asarray(cohort.labels, dtype=object)[order]
    row = pd.Index(cohort.study_ids).get_indexer(fps["study_id"].to_numpy())
    column = pd.Index(names).get_indexer(fps["label"].to_numpy())
    masks = np.zeros(len(cohort.study_ids), dtype=np.int64)
    np.bitwise_or.at(masks, row, np.left_shift(1, column.astype(np.int64)))
    wrong = np.flatnonzero(masks)
    distinct, inverse = np.unique(masks[wrong], return_inverse=True)
    text = np.array([", ".join(names[[b for b in range(len(names)) if m >> b & 1]]) for m in distinct], dtype=object)
    findings = pd.Series(text[inverse], index=cohort.study_ids[wrong], name="false-positive findings")
    table = studies.loc[studies.index.intersection(findings.index)].join(findings)
    table["age band"] = age_bands(table["patient_age"])
    return table


def age_bands(ages: pd.Series) -> pd.Series:
    """20-year bands ("40-59"), "unknown" where the age is missing: one label per distinct age."""
    bands = {age: age_band(age) for age in ages.dropna().unique()}
    return ages.map(bands).fillna("unknown")


def co_flagged_in_false_positives(fps: pd.DataFrame) -> pd.DataFrame:
    """How often two findings are false positives on the same study."""
    if fps.empty:
        return pd.DataFrame(columns=["finding_a", "finding_b", "studies"])
    pairs = fps.merge(fps, on="study_id")
    pairs = pairs[pairs["label_x"] < pairs["label_y"]]
    out = pairs.groupby(["label_x", "label_y"]).size().rename("studies").reset_index()
    out.columns = ["finding_a", "finding_b", "studies"]
    return out.sort_values("studies", ascending=False).reset_index(drop=True)


def age_band(age: float | None) -> str:
    if age is None or pd.isna(age):
        return "unknown"
    low = int(age) // 20 * 20
    return f"{low}-{low + 19}"


def cohen_kappa_by_finding(
    study_pos: np.ndarray, reviewer_ids: np.ndarray, present: np.ndarray, labels: tuple[str, ...]
) -> pd.DataFrame:
    """Cohen's kappa per finding over studies read by at least two reviewers (the two
    lowest reviewer ids of each study are compared)."""
    from sklearn.metrics import cohen_kappa_score

    cols = ["finding", "studies_read_twice", "agreement", "cohen_kappa"]
    if len(study_pos) == 0:
        return pd.DataFrame(columns=cols)
    order = np.lexsort((reviewer_ids, study_pos))
    sp, pr = np.asarray(study_pos)[order], np.asarray(present)[order]
    first = np.r_[True, sp[1:] != sp[:-1]]
    second = np.r_[False, ~first[1:]] & np.r_[False, first[:-1]]
    a, b = pr[np.flatnonzero(second) - 1], pr[second]
    if len(b) < 2:
        return pd.DataFrame(columns=cols)
    rows = []
    for j, label in enumerate(labels):
        ya, yb = a[:, j].astype(int), b[:, j].astype(int)
        kappa = cohen_kappa_score(ya, yb) if len(set(ya) | set(yb)) > 1 else float("nan")
        rows.append(
            {
                "finding": label,
                "studies_read_twice": int(len(b)),
                "agreement": float((ya == yb).mean()),
                "cohen_kappa": kappa,
            }
        )
    return pd.DataFrame(rows, columns=cols)
