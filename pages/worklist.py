"""Worklist: the triage queue with filters; selecting a row opens it in Review."""

import streamlit as st

from core.labels import NO_FINDING
from dashboard.auth import require_user
from dashboard.state import (
    DISCLAIMER,
    model_card_or_error,
    open_study,
    settings_and_engine,
)
from dashboard.worklist_filters import worklist_filters
from db.reviews import reviewers, worklist

require_user()
settings, engine = settings_and_engine()
st.title("Worklist")
st.caption(
    "Most suspicious first (margin above threshold x urgency; outside the model's domain counts 0); "
    f"a study that has waited {settings.overdue_hours:g} h longer than another always ranks above it, "
    "so one waiting that long outranks every new arrival. " + DISCLAIMER
)
card = model_card_or_error(settings)
findings = [lab for lab in (card.labels if card else []) if lab != NO_FINDING]
df = worklist(engine, worklist_filters(reviewers(engine), findings), settings.triage(), limit=200)
st.write(f"{len(df)} studies shown (at most 200)")
if not df.empty:
    if st.button("Read the top study", type="primary", key="open_top"):
        open_study(int(df.iloc[0]["id"]))
    columns = [
        "id",
        "original_name",
        "accession_number",
        "study_date",
        "patient_age",
        "patient_sex",
        "status",
        "flagged",
        "abnormal",
        "priority",
        "reviewed",
        "view_position",
        "created_at",
    ]
    shown = df[columns].copy()
    shown["abnormal"] = shown["abnormal"].map(lambda p: None if p is None or p != p else round(100 * float(p)))
    outside = df["in_domain"].map(lambda v: v is False or v == 0)
    shown["flagged"] = shown["flagged"].where(~outside, "outside the model's domain")
    event = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="worklist_table",
        column_config={
            "priority": st.column_config.NumberColumn(format="%.2f"),
            "abnormal": st.column_config.ProgressColumn(
                "P(abnormal) %",
                min_value=0,
                max_value=100,
                format="%d%%",
                help="calibrated probability that the study is not normal",
            ),
        },
    )
    rows = event.selection.rows if event and event.selection else []
    if rows:
        open_study(int(df.iloc[rows[0]]["id"]))
