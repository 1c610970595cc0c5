"""The worklist's filter panel, turned into a typed filter for ``services.worklist.reader_worklist``."""

from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from services.worklist import StudyStatus, WorklistFilter


def worklist_filters(people: dict[int, str], findings: list[str]) -> WorklistFilter:
    with st.expander("Filters", expanded=False):
        c1, c2, c3 = st.columns(3)
        statuses = c1.multiselect(
            "Status", [s.value for s in StudyStatus], default=[StudyStatus.DONE.value], key="wl_status"
        )  # plain strings in the widget's state
        finding = c2.selectbox("Flagged finding", ["(any)", *findings], key="wl_finding")
        reviewed = c3.selectbox("Reviewed", ["either", "not reviewed", "reviewed"], key="wl_reviewed")
        c4, c5, c6 = st.columns(3)
        reviewer = c4.selectbox("Reviewer", ["(any)", *people.values()], key="wl_reviewer")
        dates = c5.date_input("Uploaded between", value=(), key="wl_dates")
        name = c6.text_input("Name contains", key="wl_name", max_chars=100)
    date_from = date_to = None
    if isinstance(dates, (tuple, list)) and len(dates) == 2:
        date_from = datetime.combine(dates[0], time.min)
        date_to = datetime.combine(dates[1], time.max)
    return WorklistFilter(
        statuses=tuple(statuses),
        finding=None if finding == "(any)" else finding,
        reviewed={"either": None, "not reviewed": False, "reviewed": True}[reviewed],
        reviewer_id=next((i for i, n in people.items() if n == reviewer), None),
        date_from=date_from,
        date_to=date_to,
        name_contains=name or "",
    )
