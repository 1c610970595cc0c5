"""Review: the study's images with window/level and Grad-CAM overlays beside a compact
verdict panel (one row per label); submitting opens the reader's next study in worklist
order, at the top, with a note of what was saved."""

import time

import streamlit as st

from core.verdict_rules import normal_study
from dashboard.auth import require_user
from dashboard.state import (
    DISCLAIMER,
    STUDY_KEY,
    model_card_or_error,
    requested_study,
    scroll_to_top,
    settings_and_engine,
)
from dashboard.text import plain
from dashboard.verdicts import (
    domain_and_abnormal,
    marks_to_store,
    open_marks,
    panel_order,
    place_mark,
    scores_table,
    verdict_form,
)
from dashboard.viewer import image_panel
from db.reviews import load_study, next_study, submit_review
from db.studies import study_instances

# the reading screen is dense: less space above the title, a smaller title
COMPACT = (
    "<style>[data-testid=stMainBlockContainer]{padding:2.6rem 1.5rem 1rem 1.5rem;} "
    "h1{font-size:1.6rem !important; padding:0 !important;}</style>"
)
KEYS_HELP = (
    "**J** / **K** next / previous finding (▶)  \n**P** / **A** the ▶ finding present / absent, then the next  \n"
    "**N** normal study, save and next  \n**Ctrl+Enter** submit the verdict and open the next study  \n"
    "**M** then a click on the image: the ▶ finding is there (✕), present  \n"
    "**O** overlay on/off (it follows ▶)  \n**I** invert  \nOn the worklist: **J** read next"
)
MIN_LOOK_S = 1.5  # a verdict submitted sooner after its study opened is a double click, not a read

run_started = time.monotonic()  # when the click that started this run arrived
user = require_user()
settings, engine = settings_and_engine()
saved = st.session_state.pop("just_saved", None)
if saved:
    st.toast(f"Saved your verdict on study {saved}.", icon="✅")
    scroll_to_top()
sid = requested_study() or next_study(engine, -1, settings.triage(), user.id, settings.reads_required)
case = load_study(engine, sid, user.id) if sid else None
labels, row_flags = panel_order(case.predictions) if case and not case.predictions.empty else ([], [])
flags = dict(zip(labels, row_flags, strict=True))  # label -> flagged by the model


def refuse(message: str) -> None:
    """Why nothing was saved: a toast, seen on any screen size, and the message in the panel."""
    st.toast(message, icon="⛔")
    st.error(message)


def save_and_open_next(verdicts: dict[str, str], note: str | None) -> None:
    opened = st.session_state.get("opened_by_save", {}).get(sid)
    if opened is not None and run_started - opened < MIN_LOOK_S:
        refuse("Not saved: the study had only just opened. Look at it, then submit again.")
        return
    try:
        marks = marks_to_store(sid, verdicts, flags)
        submit_review(engine, sid, user.id, verdicts, note, actor=user.username, marks=marks)
    except ValueError as exc:
        refuse(f"Not saved: {plain(exc)}")
        return
    st.session_state["just_saved"] = sid
    nxt = next_study(engine, sid, settings.triage(), user.id, settings.reads_required)
    st.query_params.clear()
    if nxt is None:
        st.session_state.pop(STUDY_KEY, None)
    else:
        st.session_state[STUDY_KEY] = nxt
        st.session_state["opened_by_save"] = {nxt: time.monotonic()}  # the double-click guard's clock
    st.rerun()


if sid is None:
    st.title("Review")
    st.info("Nothing waits for your review: every analysed study has your verdict.")
elif case is None:
    st.error(f"Study {sid} does not exist.")
else:
    study = case.study
    st.html(COMPACT)
    st.title(f"Review: study {sid}")
    st.caption(
        f"{plain(study.original_name)} · {plain(study.file_format.upper())} · {study.width}x{study.height} · "
        f"view {plain(study.view_position or 'unknown')} · uploaded {study.created_at:%Y-%m-%d %H:%M} · " + DISCLAIMER
    )
    if study.status != "done":
        st.info(
            f"Status: {study.status}."
            + (f" Error: {plain(study.error)}" if study.error else " Results appear when the worker has analysed it.")
        )
    else:
        card = model_card_or_error(settings)
        left, right = st.columns([5, 4])
        with left:
            image_panel(
                settings.data_dir,
                study,
                case.predictions,
                case.heatmaps,
                study_instances(engine, sid),
                marks=open_marks(sid, case.my_marks),
                on_point=lambda mark: place_mark(sid, labels, row_flags, mark),
            )
        with right:
            score, normal, keys = st.columns([2, 3, 1], vertical_alignment="center")
            with keys.popover("Keys", help="Keyboard shortcuts"):
                st.markdown(KEYS_HELP)
            with score:
                domain_and_abnormal(study)
            if normal.button(
                "Normal study, save and next", key=f"normal_{sid}", shortcut="n", help="Every finding absent (N)"
            ):
                save_and_open_next(normal_study(flags), None)
            if case.other_reviews:
                st.caption(f"{case.other_reviews} other reader(s) have read this study; verdicts are kept apart.")
            submitted = verdict_form(sid, case.predictions, case.my_verdicts, case.note)
            if submitted:
                save_and_open_next(*submitted)
        # the full table under both columns: the page's width shows every column without scrolling
        scores_table(case.predictions, dict(card.threshold_support) if card else {})
