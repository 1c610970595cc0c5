"""Upload: many files or zip folders at once; a line per file; the queue refreshes itself."""

import streamlit as st

from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, settings_and_engine
from dashboard.widgets import queue_progress, upload_results
from services.ingest import ingest_upload

RESULTS_KEY = "upload_results"

user = require_user()
settings, engine = settings_and_engine()
st.title("Upload studies")
st.caption("PNG, JPEG or DICOM (CR/DX chest radiographs), many at once; a folder can be sent as a zip. " + DISCLAIMER)
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
upload_results(st.session_state.get(RESULTS_KEY, []))
queue_progress(engine)
