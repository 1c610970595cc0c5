"""Home: queue counts, worker activity, the model in use, the longest waits."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.tta import resolve_views
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, model_card_or_error, settings_and_engine
from db.reviews import longest_waiting
from db.schema import WorkerHeartbeat, utcnow


def render() -> None:
    require_user()
    settings, engine = settings_and_engine()
    st.title("Chest X-ray review")
    st.warning(DISCLAIMER, icon="⚠️")
    _queue_panel(engine)
    card = model_card_or_error(settings)
    if card is None:
        return
    st.subheader("Model")
    cols = st.columns(4)
    cols[0].metric("Model", card.name)
    cols[1].metric("Version", card.version)
    cols[2].metric("Device", _worker_device(engine) or "no worker yet")
    cols[3].metric("TTA views", len(resolve_views(settings.tta_views)))
    st.subheader("Waiting longest (not yet reviewed)")
    waiting = longest_waiting(engine)
    if waiting.empty:
        st.write("Nothing is waiting.")
    else:
        st.dataframe(waiting, hide_index=True, width="stretch")


@st.fragment(run_every=timedelta(seconds=3))
def _queue_panel(engine) -> None:
    from core.worker import queue_counts

    require_user()  # a fragment reruns on its own: a disabled user's panel stops here
    counts = queue_counts(engine)
    cols = st.columns(4)
    for col, status in zip(cols, ("queued", "processing", "done", "failed")):
        col.metric(status.capitalize(), counts[status])
    hb = WorkerHeartbeat.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(hb).order_by(hb.c.updated_at.desc())).all()
    live = [w for w in rows if w.updated_at > utcnow() - timedelta(minutes=2) and w.state != "stopped"
            or w.state.startswith("starting") and w.updated_at > utcnow() - timedelta(minutes=15)]
    if not live:
        st.info("No worker is running: studies stay queued until one starts (python -m core.worker).")
    else:
        st.dataframe(pd.DataFrame([{"worker": w.worker_id, "state": w.state, "study": w.current_study,
                                    "device": w.device, "processed": w.processed, "seen": w.updated_at,
                                    "last error": w.last_error}
                                   for w in live]), hide_index=True, width="stretch")


def _worker_device(engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(WorkerHeartbeat.device).order_by(WorkerHeartbeat.updated_at.desc())
                            .limit(1)).scalar_one_or_none()
