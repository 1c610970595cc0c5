"""Review: the study's images with window/level and Grad-CAM overlays beside a compact
verdict panel (one row per label); submitting opens the reader's next study in worklist
order, at the top, with a note of what was saved."""

import time

import streamlit as st

from core.verdict_rules import normal_study
from dashboard.auth import require_user
from dashboard.state import (
    DISCLAIMER,
    model_card_or_error,
    pin_study,
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
from services.reading import keep_claim, open_study, read_next, save_read, study_images

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

CLAIM_RENEWAL_S = 60  # the open screen renews its claim this often (claims lapse after 5 minutes)

run_started = time.monotonic()  # when the click that started this run arrived
user = require_user()
settings, engine = settings_and_engine()
saved = st.session_state.pop("just_saved", None)
if saved:
    st.toast(saved, icon="✅")
    scroll_to_top()
sid = requested_study()
if sid is None:  # "Review" from the menu: claim the reader's next study and pin the page to it
    sid = read_next(engine, settings, user)
    pin_study(sid)
opened = open_study(engine, settings, user, sid) if sid else None
case = opened.case if opened else None
labels, row_flags = panel_order(case.predictions) if case and not case.predictions.empty else ([], [])
flags = dict(zip(labels, row_flags, strict=True))  # label -> flagged by the model


def refuse(message: str) -> None:
    """Why nothing was saved: a toast, seen on any screen size, and the message in the panel."""
    st.toast(message, icon="⛔")
    st.error(message)


def save_and_open_next(study_id: int, verdicts: dict[str, str], note: str | None) -> None:
    """Store the read for ``study_id`` (the study this form was drawn for) or say why not;
    once stored, claim and open the reader's next study."""
    opened_at = st.session_state.get("opened_by_save", {}).get(study_id)
    if opened_at is not None and run_started - opened_at < MIN_LOOK_S:
        refuse("Not saved: the study had only just opened. Look at it, then submit again.")
        return
    try:
        marks = marks_to_store(study_id, verdicts, flags)
    except ValueError as exc:
        refuse(f"Not saved: {plain(exc)}")
        return
    outcome = save_read(engine, settings, user, study_id, verdicts, note, marks)
    if not outcome.saved:
        refuse(plain(outcome.message))
        return
    st.session_state["just_saved"] = outcome.message
    nxt = read_next(engine, settings, user, after_id=study_id)
    pin_study(nxt)
    if nxt is not None:
        st.session_state["opened_by_save"] = {nxt: time.monotonic()}  # the double-click guard's clock
    st.rerun()


@st.fragment(run_every=CLAIM_RENEWAL_S)
def renew_claim(study_id: int) -> None:
    """Keep this reader's claim while the screen stays open (no rerun of the page)."""
    keep_claim(engine, user, study_id)


if sid is None:
    st.title("Review")
    st.info("Nothing waits for your review: every analysed study has your verdict.")
elif case is None:
    st.error(f"Study {sid} does not exist.")
else:
    assert opened is not None
    study = case.study
    st.html(COMPACT)
    st.title(f"Review: study {sid}")
    st.caption(
        f"{plain(study.original_name)} · {plain(study.file_format.upper())} · {study.width}x{study.height} · "
        f"view {plain(study.view_position or 'unknown')} · uploaded {study.created_at:%Y-%m-%d %H:%M} · " + DISCLAIMER
    )
    if opened.read_only and study.status == "done":
        st.info(f"Read-only: {opened.access.reason}")
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
                study_images(engine, sid),
                marks=open_marks(sid, case.my_marks),
                on_point=lambda mark: place_mark(sid, labels, row_flags, mark),
            )
        with right:
            score, normal, keys = st.columns([2, 3, 1], vertical_alignment="center")
            with keys.popover("Keys", help="Keyboard shortcuts"):
                st.markdown(KEYS_HELP)
            with score:
                domain_and_abnormal(study)
            if case.other_reviews:
                st.caption(f"{case.other_reviews} other reader(s) have read this study; verdicts are kept apart.")
            if opened.read_only:
                if st.button("Read next", key=f"next_{sid}", type="primary", shortcut="j"):
                    pin_study(read_next(engine, settings, user, after_id=sid))
                    st.rerun()
            else:
                renew_claim(sid)
                if normal.button(
                    "Normal study, save and next", key=f"normal_{sid}", shortcut="n", help="Every finding absent (N)"
                ):
                    save_and_open_next(sid, normal_study(flags), None)
                submitted = verdict_form(sid, case.predictions, case.my_verdicts, case.note)
                if submitted:
                    save_and_open_next(sid, *submitted)
        # the full table under both columns: the page's width shows every column without scrolling
        scores_table(case.predictions, dict(card.threshold_support) if card else {})
