"""The Analytics page's selection panel and its cached computation."""

from __future__ import annotations

from datetime import datetime, time

import numpy as np
import streamlit as st

from core.cohort import default_boot_count, false_positive_studies, false_positives, finding_table
from services.analytics import CohortFilter, load_cohort


@st.cache_data(max_entries=16, show_spinner="Computing cohort metrics…")
def compute(
    _engine, stamp: tuple, flt: CohortFilter, labels: tuple[str, ...], source: str, rule: str, rule_reviewer: int | None
):
    """Everything the page shows, cached until the data (stamp) or the selection changes."""
    data = load_cohort(_engine, flt, labels, with_reference=source == "reference")
    cohort = data.cohort(source, rule, rule_reviewer)
    n_known = int((~np.isnan(cohort.truth)).any(axis=1).sum())
    n_boot = default_boot_count(n_known)
    fps = false_positives(cohort)
    return data, cohort, finding_table(cohort, n_boot), (fps, false_positive_studies(cohort, fps)), n_boot


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
