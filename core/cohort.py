"""Cohort ground truth and per-finding metrics (pure: arrays and data frames in, tables out).

Truth for a study and label comes either from reviewers' verdicts or from imported
reference labels. Reviewers can disagree; the rule that decides is explicit:

- ``majority``: the majority of reviewers; a tie is settled by an adjudicator's
  verdict when one exists, otherwise the label stays unknown (excluded, not guessed).
- ``adjudicator``: an adjudicator's (admin's) verdict wins; otherwise the majority.
- ``reviewer``: only the chosen reviewer's verdicts count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.labels import LABELS
from core.metrics import auc_ci, bootstrap_weights, confusion_at

RULES = ("majority", "adjudicator", "reviewer")


def truth_from_verdicts(verdicts: pd.DataFrame, rule: str = "majority", reviewer_id: int | None = None,
                        adjudicators: set[int] | None = None) -> pd.DataFrame:
    """Columns study_id, label, present (bool) from verdict rows (study_id, label, reviewer_id, present)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}")
    cols = ["study_id", "label", "present"]
    if verdicts.empty:
        return pd.DataFrame(columns=cols)
    adjudicators = adjudicators or set()
    if rule == "reviewer":
        if reviewer_id is None:
            raise ValueError("the 'reviewer' rule needs a reviewer")
        mine = verdicts[verdicts["reviewer_id"] == reviewer_id]
        return mine[cols].reset_index(drop=True)
    v = verdicts.assign(present=verdicts["present"].astype(bool).astype(float))
    votes = v.groupby(["study_id", "label"])["present"].agg(pos="sum", n="count")
    neg = votes["n"] - votes["pos"]
    # 1.0 present, 0.0 absent, NaN undecided (a tie)
    decided = pd.Series(np.where(votes["pos"] > neg, 1.0, np.where(votes["pos"] < neg, 0.0, np.nan)),
                        index=votes.index)
    adj = v[v["reviewer_id"].isin(adjudicators)].groupby(["study_id", "label"])["present"].last()
    adj = adj.reindex(decided.index)
    if rule == "adjudicator":
        decided = adj.where(adj.notna(), decided)
    else:  # majority: an adjudicator only breaks ties
        decided = decided.where(decided.notna(), adj)
    out = decided.dropna().rename("present").reset_index()
    out["present"] = out["present"] > 0.5
    return out[cols].reset_index(drop=True)


def truth_from_reference(reference: pd.DataFrame) -> pd.DataFrame:
    """Reference rows (study_id, finding_labels) -> study_id, label, present for all 15 labels."""
    rows = []
    for sid, text in zip(reference["study_id"], reference["finding_labels"]):
        names = {t.strip() for t in str(text).split("|")}
        rows.extend((sid, lab, lab in names) for lab in LABELS)
    return pd.DataFrame(rows, columns=["study_id", "label", "present"])


def finding_table(truth: pd.DataFrame, predictions: pd.DataFrame, groups: pd.Series | None = None,
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per finding: n, prevalence, AUC with bootstrap CI, and the operating point at each
    prediction's own threshold (sensitivity, specificity, PPV, NPV with Wilson intervals,
    false-positive rate and the share of positive calls that are wrong).

    predictions: study_id, label, probability, threshold. groups: patient key per
    study_id (index) for a cluster bootstrap; studies without one are their own group.
    """
    data = truth.merge(predictions, on=["study_id", "label"], how="inner")
    rows = []
    for j, label in enumerate(LABELS):
        d = data[data["label"] == label]
        if d.empty:
            continue
        y = d["present"].to_numpy(bool)
        s = d["probability"].to_numpy(float)
        g = _groups_for(d["study_id"], groups)
        ci = auc_ci(y, s, groups=g, n_boot=n_boot, seed=seed + j)
        conf = _confusion_own_thresholds(y, s, d["threshold"].to_numpy(float))
        sens, spec, ppv, npv = conf.sensitivity(), conf.specificity(), conf.ppv(), conf.npv()
        fpr, fdr = conf.false_positive_rate(), conf.false_discovery_rate()
        rows.append({
            "finding": label, "n": len(d), "positives": int(y.sum()), "negatives": int((~y).sum()),
            "prevalence": float(y.mean()), "auc": ci.value, "auc_low": ci.low, "auc_high": ci.high,
            "tp": conf.tp, "fp": conf.fp, "tn": conf.tn, "fn": conf.fn,
            "sensitivity": sens.value, "sensitivity_low": sens.low, "sensitivity_high": sens.high,
            "specificity": spec.value, "specificity_low": spec.low, "specificity_high": spec.high,
            "ppv": ppv.value, "ppv_low": ppv.low, "ppv_high": ppv.high,
            "npv": npv.value, "npv_low": npv.low, "npv_high": npv.high,
            "false_positive_rate": fpr.value, "wrong_share_of_positive_calls": fdr.value,
        })
    return pd.DataFrame(rows)


def _groups_for(study_ids: pd.Series, groups: pd.Series | None) -> np.ndarray:
    if groups is None:
        return study_ids.to_numpy()
    mapped = study_ids.map(groups)
    return np.where(mapped.isna(), "s" + study_ids.astype(str), mapped.astype(str))


def _confusion_own_thresholds(y: np.ndarray, s: np.ndarray, t: np.ndarray):
    """Each prediction is judged at the threshold it was made with (thresholds can change)."""
    from core.metrics import Confusion

    pred = s >= t
    return Confusion(int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & ~y).sum()), int((~pred & y).sum()))


def false_positives(truth: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Rows (study_id, label) flagged by the model whose truth is absent."""
    d = truth.merge(predictions, on=["study_id", "label"], how="inner")
    return d[(d["probability"] >= d["threshold"]) & ~d["present"].astype(bool)][["study_id", "label", "probability", "threshold"]]


def co_flagged_in_false_positives(fps: pd.DataFrame) -> pd.DataFrame:
    """How often two findings are false positives on the same study."""
    pairs: dict[tuple[str, str], int] = {}
    for _, grp in fps.groupby("study_id"):
        labels = sorted(grp["label"])
        for i in range(len(labels)):
            for k in range(i + 1, len(labels)):
                pairs[(labels[i], labels[k])] = pairs.get((labels[i], labels[k]), 0) + 1
    out = pd.DataFrame([(a, b, n) for (a, b), n in pairs.items()], columns=["finding_a", "finding_b", "studies"])
    return out.sort_values("studies", ascending=False).reset_index(drop=True)


def age_band(age: float | None) -> str:
    if age is None or pd.isna(age):
        return "unknown"
    low = int(age) // 20 * 20
    return f"{low}-{low + 19}"


def cohen_kappa_by_finding(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa per finding over studies read by two reviewers (the first two by id)."""
    from sklearn.metrics import cohen_kappa_score

    rows = []
    for label, d in verdicts.groupby("label"):
        wide = d.pivot_table(index="study_id", columns="reviewer_id", values="present", aggfunc="last")
        if wide.shape[1] < 2:
            continue
        a, b = wide.columns[:2]
        both = wide[[a, b]].dropna()
        if len(both) < 2:
            continue
        ya, yb = both[a].astype(int), both[b].astype(int)
        kappa = cohen_kappa_score(ya, yb) if len(set(ya) | set(yb)) > 1 else float("nan")
        rows.append({"finding": label, "studies_read_twice": len(both), "agreement": float((ya == yb).mean()),
                     "cohen_kappa": kappa})
    return pd.DataFrame(rows, columns=["finding", "studies_read_twice", "agreement", "cohen_kappa"])


__all__ = ["truth_from_verdicts", "truth_from_reference", "finding_table", "false_positives",
           "co_flagged_in_false_positives", "cohen_kappa_by_finding", "bootstrap_weights", "confusion_at"]


def default_boot_count(n: int) -> int:
    """1000 resamples for usual cohorts; fewer for very large ones, where the interval is
    already narrow and the cost grows with n x resamples (documented on the page)."""
    return int(min(1000, max(200, 20_000_000 // max(1, n))))


@dataclass
class CohortReport:
    truth: pd.DataFrame
    predictions: pd.DataFrame
    table: pd.DataFrame
    false_positives: pd.DataFrame
    n_boot: int


def cohort_report(truth: pd.DataFrame, predictions: pd.DataFrame, groups: pd.Series | None = None,
                  n_boot: int | None = None, seed: int = 0) -> CohortReport:
    """Everything the analytics page computes, in one call (cached by the page)."""
    n = int(truth["study_id"].nunique()) if not truth.empty else 0
    boots = n_boot or default_boot_count(n)
    table = finding_table(truth, predictions, groups, n_boot=boots, seed=seed)
    return CohortReport(truth, predictions, table, false_positives(truth, predictions), boots)
