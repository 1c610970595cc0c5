"""Upload: many files or zip folders at once; a line per file; the queue refreshes itself."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.ingest import ingest_upload
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, settings_and_engine
from dashboard.text import plain

RESULTS_KEY = "upload_results"


def render() -> None:
    user = require_user()
    settings, engine = settings_and_engine()
    st.title("Upload studies")
    st.caption("PNG, JPEG or DICOM (CR/DX chest radiographs), many at once; a folder can be sent as a zip. "
               + DISCLAIMER)
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader("Studies", accept_multiple_files=True, key="upload_files")
        submitted = st.form_submit_button("Upload and queue")
    if submitted and files:
        results = []
        progress = st.progress(0.0, text="Checking files…")
        for i, f in enumerate(files):
            for r in ingest_upload(engine, settings, f.name, f.getvalue(), actor=user.username, user_id=user.id):
                results.append({"file": r.name, "result": r.status, "study": r.study_id, "message": r.message})
            progress.progress((i + 1) / len(files), text=f"{i + 1} of {len(files)} checked")
        st.session_state[RESULTS_KEY] = results
    _show_results(st.session_state.get(RESULTS_KEY, []))
    _queue_progress(engine)


def _show_results(results: list[dict]) -> None:
    if not results:
        return
    counts = pd.Series([r["result"] for r in results]).value_counts().to_dict()
    st.write(", ".join(f"{n} {k}" for k, n in counts.items()))
    for r in results:
        if r["result"] == "rejected":
            st.error(f"**{plain(r['file'])}**: rejected. {plain(r['message'])}")
        elif r["result"] == "duplicate":
            st.info(f"**{plain(r['file'])}**: duplicate of study {r['study']}.")
            st.page_link("pages/review.py", label=f"Open study {r['study']}", query_params={"study": r["study"]})
        else:
            st.success(f"**{plain(r['file'])}**: accepted as study {r['study']}, queued for analysis.")


@st.fragment(run_every=timedelta(seconds=2))
def _queue_progress(engine) -> None:
    from core.worker import queue_counts

    require_user()  # a fragment reruns on its own: a disabled user's panel stops here
    counts = queue_counts(engine)
    total = sum(counts.values())
    finished = counts["done"] + counts["failed"]
    st.subheader("Queue")
    st.progress(finished / total if total else 1.0,
                text=f"{counts['done']} done, {counts['processing']} processing, {counts['queued']} queued, "
                     f"{counts['failed']} failed")
