"""Worklist: the triage queue with filters; selecting a row opens it in Review."""
from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from core.labels import FINDINGS
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, settings_and_engine
from db.reviews import WorklistFilter, reviewers, worklist
from db.schema import StudyStatus


def render() -> None:
    require_user()
    settings, engine = settings_and_engine()
    st.title("Worklist")
    st.caption("Most suspicious first (margin above threshold x urgency; outside the model's domain counts 0); "
               f"a study that has waited {settings.overdue_hours:g} h longer than another always ranks above it, "
               "so one waiting that long outranks every new arrival. " + DISCLAIMER)
    flt = _filters(engine)
    df = worklist(engine, flt, settings.overdue_hours, limit=200)
    st.write(f"{len(df)} studies shown (at most 200)")
    if df.empty:
        return
    if st.button("Read the top study", type="primary", key="open_top"):
        st.session_state["study_id"] = int(df.iloc[0]["id"])
        st.switch_page("pages/review.py")
    view = df[["id", "original_name", "status", "flagged", "abnormal", "priority", "reviewed", "view_position",
               "created_at"]].copy()
    view["abnormal"] = view["abnormal"].map(lambda p: None if p is None or p != p else round(100 * float(p)))
    outside = df["in_domain"].map(lambda v: v is False or v == 0)
    view["flagged"] = view["flagged"].where(~outside, "outside the model's domain")
    event = st.dataframe(view, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="worklist_table",
                         column_config={"priority": st.column_config.NumberColumn(format="%.2f"),
                                        "abnormal": st.column_config.ProgressColumn(
                                            "P(abnormal) %", min_value=0, max_value=100, format="%d%%",
                                            help="calibrated probability that the study is not normal")})
    rows = event.selection.rows if event and event.selection else []
    if rows:
        st.session_state["study_id"] = int(df.iloc[rows[0]]["id"])
        st.switch_page("pages/review.py")


def _filters(engine) -> WorklistFilter:
    people = reviewers(engine)
    with st.expander("Filters", expanded=False):
        c1, c2, c3 = st.columns(3)
        statuses = c1.multiselect("Status", StudyStatus.ALL, default=[StudyStatus.DONE], key="wl_status")
        finding = c2.selectbox("Flagged finding", ["(any)"] + list(FINDINGS), key="wl_finding")
        reviewed = c3.selectbox("Reviewed", ["either", "not reviewed", "reviewed"], key="wl_reviewed")
        c4, c5, c6 = st.columns(3)
        reviewer = c4.selectbox("Reviewer", ["(any)"] + list(people.values()), key="wl_reviewer")
        dates = c5.date_input("Uploaded between", value=(), key="wl_dates")
        name = c6.text_input("Name contains", key="wl_name", max_chars=100)
    date_from = date_to = None
    if isinstance(dates, (tuple, list)) and len(dates) == 2:
        date_from = datetime.combine(dates[0], time.min)
        date_to = datetime.combine(dates[1], time.max)
    reviewer_id = next((i for i, n in people.items() if n == reviewer), None)
    return WorklistFilter(
        statuses=tuple(statuses), finding=None if finding == "(any)" else finding,
        reviewed={"either": None, "not reviewed": False, "reviewed": True}[reviewed],
        reviewer_id=reviewer_id, date_from=date_from, date_to=date_to, name_contains=name or "",
    )
