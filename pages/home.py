"""Home: queue counts, worker activity, the model in use, the longest waits."""

import streamlit as st

from core.tta import resolve_views
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, model_card_or_error, settings_and_engine
from dashboard.text import plain
from dashboard.widgets import queue_and_workers
from services.operations import latest_device
from services.pacs.outbox import results_failing, site_destination
from services.worklist import longest_waiting

require_user()
settings, engine = settings_and_engine()
st.title("Chest X-ray review")
st.warning(DISCLAIMER, icon="⚠️")
queue_and_workers(engine)
destination = site_destination(engine)
st.caption(
    f"DICOM results (SR and overlays) go back to the PACS at {plain(destination)}."
    if destination
    else "No PACS service has recorded a destination: DICOM results stay here (see `cxr pacs`)."
)
failing = results_failing(engine)
if failing:
    st.error(
        f"{failing} result(s) for the PACS have not been delivered (retrying, failed, or never built): "
        "see Administration → PACS outbox or `cxr outbox list`, and the audit trail (pacs_results_failed)."
    )

card = model_card_or_error(settings)
if card is not None:
    st.subheader("Model")
    st.markdown(f"**{plain(card.name)}** · version `{card.version}` · thresholds `{card.threshold_version}`")
    cols = st.columns(2)
    cols[0].metric("Device", latest_device(engine) or "no worker yet")
    cols[1].metric("TTA views", len(resolve_views(settings.tta_views)))

st.subheader("Waiting longest (not yet reviewed)")
waiting = longest_waiting(engine)
if waiting.empty:
    st.write("Nothing is waiting.")
else:
    st.dataframe(waiting, hide_index=True, width="stretch")
