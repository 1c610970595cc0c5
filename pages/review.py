"""Review: the image with window/level and Grad-CAM overlays, the model's scores, and
the reviewer's verdict on every label; submitting opens the next study in worklist order."""

import streamlit as st

from dashboard.auth import require_user
from dashboard.state import (
    DISCLAIMER,
    STUDY_KEY,
    model_card_or_error,
    requested_study,
    settings_and_engine,
)
from dashboard.text import plain
from dashboard.verdicts import domain_and_abnormal, scores_table, verdict_form
from dashboard.viewer import image_panel
from db.reviews import load_study, next_study, submit_review
from db.studies import study_instances

user = require_user()
settings, engine = settings_and_engine()
sid = requested_study() or next_study(engine, -1, settings.triage(), user.id)
case = load_study(engine, sid, user.id) if sid else None
if sid is None:
    st.title("Review")
    st.info("Nothing waits for your review: every analysed study has your verdict.")
elif case is None:
    st.error(f"Study {sid} does not exist.")
else:
    study = case.study
    st.title(f"Review: study {sid}")
    st.caption(
        f"{plain(study.original_name)} · {plain(study.file_format.upper())} · {study.width}x{study.height} · "
        f"view {plain(study.view_position or 'unknown')} · uploaded {study.created_at:%Y-%m-%d %H:%M}"
    )
    st.warning(DISCLAIMER, icon="⚠️")
    if study.status != "done":
        st.info(
            f"Status: {study.status}."
            + (f" Error: {plain(study.error)}" if study.error else " Results appear when the worker has analysed it.")
        )
    else:
        domain_and_abnormal(study)
        if case.other_reviews:
            st.caption(
                f"{case.other_reviews} other reviewer(s) have reviewed this study; their verdicts are kept separately."
            )
        card = model_card_or_error(settings)
        left, right = st.columns([3, 2])
        with left:
            image_panel(settings.data_dir, study, case.predictions, case.heatmaps, study_instances(engine, sid))
        with right:
            scores_table(case.predictions, dict(card.threshold_support) if card else {})
            submitted = verdict_form(sid, case.predictions, case.my_verdicts, case.note)
        if submitted:
            verdicts, note = submitted
            submit_review(engine, sid, user.id, verdicts, note, actor=user.username)
            nxt = next_study(engine, sid, settings.triage(), user.id)
            st.query_params.clear()
            if nxt is None:
                st.session_state.pop(STUDY_KEY, None)
                st.success("Verdict saved. No more studies waiting for you.")
            else:
                st.session_state[STUDY_KEY] = nxt
                st.rerun()
