"""The Analytics page's selection panel and its cached computations.

Each computation is cached per selection and per state of the stored data (the stamp) in
a resource cache: the figures are shared read-only by every session and returned as they
are, not copied (a data cache pickles its value on every hit: 0.15 s at 100,000 studies).
What only one tab shows (the false-positive tables, a finding's ROC band) is computed when
that tab opens, not with the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

import numpy as np
import pandas as pd
import streamlit as st

from core import metrics
from core.cohort import (
    Cohort,
    Resampling,
    default_boot_count,
    false_positive_studies,
    false_positives,
    finding_roc_band,
    finding_table,
    resampling,
)
from services.analytics import CohortData, CohortFilter, load_cohort, study_details, with_truth


@dataclass(frozen=True)
class Selection:
    """What the page shows figures for: the stored data's stamp, the filter, the label
    order, the truth source and the rule for disagreeing readers."""

    stamp: tuple[str, ...]
    flt: CohortFilter
    labels: tuple[str, ...]
    source: str
    rule: str
    rule_reviewer: int | None = None


@dataclass(frozen=True)
class CohortFigures:
    data: CohortData
    cohort: Cohort
    table: pd.DataFrame  # core.cohort.finding_table
    resamples: Resampling  # shared by the table's intervals and every ROC band

    @property
    def n_boot(self) -> int:
        return self.resamples.n_boot


@dataclass(frozen=True)
class RocCurves:
    fpr: np.ndarray
    tpr: np.ndarray
    band_fpr: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


@st.cache_resource(max_entries=8, show_spinner="Computing cohort metrics…")
def compute(_engine, selection: Selection) -> CohortFigures:
    """The cohort and the per-finding table (what the page's first tab shows)."""
    data = load_cohort(_engine, selection.flt, selection.labels, with_reference=selection.source == "reference")
    cohort = with_truth(data, selection.source, selection.rule, selection.rule_reviewer)
    n_known = int((~np.isnan(cohort.truth)).any(axis=1).sum())
    resamples = resampling(cohort, default_boot_count(n_known))
    return CohortFigures(data, cohort, finding_table(cohort, shared=resamples), resamples)


@st.cache_resource(max_entries=8, show_spinner="Reading the studies' details…")
def cohort_details(_engine, selection: Selection) -> pd.DataFrame:
    """Name, upload time, view, sex and age of every study in the cohort, in its order
    (read when a tab shows them, not with the page's figures)."""
    return study_details(_engine, compute(_engine, selection).cohort.study_ids)


@st.cache_resource(max_entries=8, show_spinner="Finding the false positives…")
def false_positive_tables(_engine, selection: Selection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every false positive, one row per study with one), for the False positives tab."""
    cohort = compute(_engine, selection).cohort
    fps = false_positives(cohort)
    return fps, false_positive_studies(cohort, fps, cohort_details(_engine, selection))


@st.cache_resource(max_entries=32, show_spinner=False)
def roc_curves(_engine, selection: Selection, finding: str) -> RocCurves | None:
    """A finding's ROC curve, its bootstrap band by patient and its precision-recall curve,
    thinned to what a chart draws (None when its truth has one class only)."""
    figures = compute(_engine, selection)
    y, s, _, _ = figures.cohort.label(finding)
    if not (y.any() and (~y).any()):
        return None
    fpr, tpr = metrics.thin_curve(*metrics.roc_points(y, s)[:2])
    grid, low, high = finding_roc_band(figures.cohort, finding, figures.resamples)
    precision, recall, _ = metrics.pr_points(y, s)
    recall, precision = metrics.thin_curve(recall, precision)
    return RocCurves(fpr, tpr, grid, low, high, precision, recall)


def selection(people: dict[int, str], versions: list[str]) -> tuple[CohortFilter, str, str, int | None]:
    """(filter, truth source, disagreement rule, chosen reviewer) from the selection panel."""
    with st.expander("Selection", expanded=True):
        c1, c2, c3, c4 = st.columns(4)
        dates = c1.date_input("Uploaded between", value=(), key="an_dates")
        version = c2.selectbox("Model version", ["(all)", *versions], key="an_version")
        reviewer = c3.selectbox("Reviewer", ["(all)", *people.values()], key="an_reviewer")
        view = c4.selectbox("View position", ["(all)", "PA", "AP", "LL"], key="an_view")
        c5, c6, c7 = st.columns(3)
        source = c5.radio(
            "Ground truth",
            ["verdicts", "reference"],
            key="an_source",
            horizontal=True,
            format_func={"verdicts": "reviewers' verdicts", "reference": "imported reference labels"}.get,
        )
        rule = c6.selectbox(
            "When reviewers disagree",
            ["majority", "adjudicator", "reviewer"],
            key="an_rule",
            format_func={
                "majority": "majority (ties: adjudicator, else excluded)",
                "adjudicator": "an adjudicator (admin) decides",
                "reviewer": "one chosen reviewer",
            }.get,
        )
        chosen = c7.selectbox("Chosen reviewer", list(people.values()) or ["(none)"], key="an_rule_reviewer")
    date_from = date_to = None
    if isinstance(dates, (tuple, list)) and len(dates) == 2:
        date_from, date_to = datetime.combine(dates[0], time.min), datetime.combine(dates[1], time.max)
    rid = next((i for i, n in people.items() if n == reviewer), None)
    chosen_id = next((i for i, n in people.items() if n == chosen), None)
    flt = CohortFilter(
        date_from, date_to, None if version == "(all)" else version, rid, None if view == "(all)" else view
    )
    return flt, source, rule, chosen_id if rule == "reviewer" else None
