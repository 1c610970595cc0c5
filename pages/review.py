"""Review: the study's images and the verdict panel as one browser component (keys, window,
zoom, overlays and marks never rerun this script); a submission carries the id of the study
it was made on, is saved for that study or refused with the reason, and opens the reader's
next study, whose images were prefetched while they read this one."""

import streamlit as st

from dashboard.auth import require_user
from dashboard.reading_component import reading_component, trigger
from dashboard.reading_payload import MIN_LOOK_MS, prefetch_urls, study_payload
from dashboard.reading_submission import parse_submission
from dashboard.state import (
    DISCLAIMER,
    STUDY_KEY,
    model_card_or_error,
    pin_study,
    requested_study,
    settings_and_engine,
)
from dashboard.text import plain
from dashboard.verdicts import scores_table
from services.reading import (
    keep_claim,
    open_study,
    peek_next,
    read_next,
    save_marked_read,
    study_images,
    study_to_prefetch,
)

# the reading screen is dense: less space above the title, a smaller title
COMPACT = (
    "<style>[data-testid=stMainBlockContainer]{padding:3.1rem 1.5rem 1rem 1.5rem;} "
    "h1{font-size:1.6rem !important; padding:0 !important;}</style>"
)
CLAIM_RENEWAL_S = 60  # the open screen renews its claim this often (claims lapse after 5 minutes)
NOTICE_KEY = "reader_notice"  # what became of the last submission, shown where the reader looks

user = require_user()
settings, engine = settings_and_engine()


def on_submit() -> None:
    """Store the submitted read for the study it names, or say why not; once stored, claim
    and pin the reader's next study (this runs before the script, so the run that follows
    draws the next study)."""
    try:
        sub = parse_submission(trigger("submit"))
    except ValueError as exc:
        st.session_state[NOTICE_KEY] = {"kind": "refused", "text": f"Not saved: {exc}."}
        return
    if sub.shown_ms < MIN_LOOK_MS:
        text = "Not saved: the study had only just opened. Look at it, then submit again."
        st.session_state[NOTICE_KEY] = {"kind": "refused", "text": text}
        return
    outcome = save_marked_read(engine, settings, user, sub.study_id, sub.states, sub.marks, sub.note)
    st.session_state[NOTICE_KEY] = {"kind": "saved" if outcome.saved else "refused", "text": outcome.message}
    if outcome.saved:
        pin_study(read_next(engine, settings, user, after_id=sub.study_id))


def on_navigate() -> None:
    """ "Read next" from a read-only study: claim the reader's next study and pin it."""
    pin_study(read_next(engine, settings, user, after_id=st.session_state.get(STUDY_KEY) or -1))


@st.fragment(run_every=CLAIM_RENEWAL_S)
def renew_claim(study_id: int) -> None:
    """Keep this reader's claim while the screen stays open (no rerun of the page)."""
    keep_claim(engine, user, study_id)


def prefetch_for(study_id: int) -> list[str]:
    """The next study's image URLs (packed now), for the browser to fetch while this one is read."""
    nxt = peek_next(engine, settings, user, after_id=study_id)
    found = study_to_prefetch(engine, user, nxt) if nxt else None
    if found is None or found[0].status != "done":
        return []
    return prefetch_urls(settings.data_dir, *found)


notice = st.session_state.pop(NOTICE_KEY, None)
sid = requested_study()
if sid is None:  # "Review" from the menu: claim the reader's next study and pin the page to it
    sid = read_next(engine, settings, user)
    pin_study(sid)
opened = open_study(engine, settings, user, sid) if sid else None
case = opened.case if opened else None

if sid is None:
    st.title("Review")
    if notice:
        (st.success if notice["kind"] == "saved" else st.error)(plain(notice["text"]))
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
    if study.status != "done":
        st.info(
            f"Status: {study.status}."
            + (f" Error: {plain(study.error)}" if study.error else " Results appear when the worker has analysed it.")
        )
    else:
        card = model_card_or_error(settings)
        if not opened.read_only:
            renew_claim(sid)
        data = study_payload(
            settings.data_dir,
            case,
            study_images(engine, sid),
            read_only_reason=opened.access.reason if opened.read_only else None,
            notice=notice,
            prefetch=[] if opened.read_only else prefetch_for(sid),
        )
        reading_component(data, on_submit, on_navigate)
        scores_table(case.predictions, dict(card.threshold_support) if card else {})
