"""Small widgets shared by pages: live queue panels and the list of upload results."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from dashboard.auth import require_user
from dashboard.text import plain
from services.operations import live_workers, queue_counts


@st.fragment(run_every=timedelta(seconds=3))
def queue_and_workers(engine: Engine) -> None:
    """Studies per status and the workers alive, refreshed every few seconds."""
    require_user()  # a fragment reruns on its own: a disabled user's panel stops here
    counts = queue_counts(engine)
    cols = st.columns(4)
    for col, status in zip(cols, ("queued", "processing", "done", "failed"), strict=True):
        col.metric(status.capitalize(), counts[status])
    live = live_workers(engine)
    if not live:
        st.info("No worker is running: studies stay queued until one starts (cxr worker).")
        return
    if all(w.starting for w in live):
        st.info("The worker is starting: the model is loading; queued studies are analysed once it is ready.")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "worker": w.worker_id,
                    "state": w.state,
                    "study": w.current_study,
                    "device": w.device,
                    "processed": w.processed,
                    "seen": w.updated_at,
                    "last error": w.last_error,
                }
                for w in live
            ]
        ),
        hide_index=True,
        width="stretch",
    )


@st.fragment(run_every=timedelta(seconds=2))
def queue_progress(engine: Engine) -> None:
    """One progress bar over the whole queue (the Upload page shows it under the results)."""
    require_user()  # a fragment reruns on its own: a disabled user's panel stops here
    counts = queue_counts(engine)
    total = sum(counts.values())
    finished = counts["done"] + counts["failed"]
    st.subheader("Queue")
    st.progress(
        finished / total if total else 1.0,
        text=f"{counts['done']} done, {counts['processing']} processing, {counts['queued']} queued, "
        f"{counts['failed']} failed",
    )


def upload_results(results: list[dict]) -> None:
    """One line per file; every name and message is shown as text, never as markup."""
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
