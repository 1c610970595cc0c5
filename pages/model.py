"""Model: the card, so a reviewer knows how far to trust a score."""

import streamlit as st

from dashboard import model_card_view as view
from dashboard.auth import require_user
from dashboard.model_registry_view import registry_section
from dashboard.state import DISCLAIMER, model_card_or_error, settings_and_engine
from dashboard.text import plain

user = require_user()
settings, engine = settings_and_engine()
card = model_card_or_error(settings)
if card is None:
    st.stop()
st.title(f"Model: {plain(card.name)}")
st.caption(f"version {card.version} · thresholds {card.threshold_version} · input {card.input_size}px")
st.warning(DISCLAIMER, icon="⚠️")
st.caption(f"Intended use: {plain(card.intended_use)}")
view.other_models(settings, card)
view.held_out_evaluation(card)
view.abnormal_and_domain(card)
view.runs_compared(card.training.get("runs_compared"))
st.subheader("Thresholds")
st.write(card.threshold_method)
unreliable = [lab for lab in card.labels if card.threshold_reliable(lab) is False]
if unreliable:
    st.warning("Unreliable thresholds (fewer than 10 validation positives chose them): " + ", ".join(unreliable))
st.subheader("Training data")
st.json(card.training, expanded=False)
st.subheader("Architecture and preprocessing")
st.write(card.architecture)
st.json(card.preprocessing)
registry_section(engine, settings, user)
