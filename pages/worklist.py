"""Worklist: one reader's queue in triage order; "Read next" and a selected row open Review."""

import streamlit as st

from core.labels import NO_FINDING
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, model_card_or_error, open_study, settings_and_engine
from dashboard.worklist_filters import worklist_filters
from services.reading import read_next
from services.worklist import reader_worklist, reviewers

QUEUE_NAMES = {"to_read": "To read", "second_read": "Second read", "adjudication": "Adjudication", "all": "All"}

user = require_user()
settings, engine = settings_and_engine()
st.title("Worklist")
st.caption(
    "Most suspicious first (margin above threshold x urgency; outside the model's domain counts 0); "
    f"a study that has waited {settings.overdue_hours:g} h longer than another always ranks above it, "
    "so one waiting that long outranks every new arrival. " + DISCLAIMER
)
queues = ["to_read"] + (["second_read"] if settings.reads_required > 1 else [])
queues += (["adjudication"] if user.is_admin else []) + ["all"]
c1, c2 = st.columns([3, 1])
queue = c1.segmented_control("Queue", queues, default="to_read", format_func=QUEUE_NAMES.get, key="wl_queue")
if c2.button(
    "Read next",
    type="primary",
    key="open_top",
    shortcut="j",
    help="Your most urgent unread study (the same one Review opens); shortcut J",
):
    nxt = read_next(engine, settings, user)
    if nxt is None:
        st.info("Nothing waits for your read.")
    else:
        open_study(nxt)
card = model_card_or_error(settings)
findings = [lab for lab in (card.labels if card else []) if lab != NO_FINDING]
flt = worklist_filters(reviewers(engine), findings)
flt.reader_id, flt.queue = user.id, queue or "to_read"
df = reader_worklist(engine, settings, flt, limit=200)
st.write(f"{len(df)} studies shown (at most 200)")
if not df.empty:
    # what a reader triages by first; DICOM demographics after; a column empty for every
    # listed study (age and sex of PNG uploads) is left out
    columns = [
        "id",
        "priority",
        "abnormal",
        "waiting_h",
        "reads",
        "flagged",
        "read_by_me",
        "original_name",
        "accession_number",
        "study_date",
        "patient_age",
        "patient_sex",
        "status",
        "view_position",
        "created_at",
    ]
    columns = [c for c in columns if df[c].notna().any() and (df[c].astype(str) != "").any()]
    shown = df[columns].copy()
    if "abnormal" in shown:
        shown["abnormal"] = shown["abnormal"].map(lambda p: None if p is None or p != p else round(100 * float(p)))
    outside = df["in_domain"].map(lambda v: v is False or v == 0)
    if outside.any():
        shown["flagged"] = df["flagged"].where(~outside, "outside the model's domain")
    event = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="worklist_table",
        column_config={
            "priority": st.column_config.NumberColumn(format="%.2f"),
            "waiting_h": st.column_config.NumberColumn("waiting (h)", format="%.1f"),
            "read_by_me": st.column_config.CheckboxColumn("read by me"),
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
