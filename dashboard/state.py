"""Process-wide resources for the app: settings, database engine, background worker."""
from __future__ import annotations

import os

import streamlit as st
from sqlalchemy import Engine

from core.config import Settings, load_settings
from db.bootstrap import open_database

DISCLAIMER = ("Screening aid for radiologist review, not a diagnosis. The model flags findings with a "
              "high false-positive rate by design; every study needs a radiologist's read.")


@st.cache_resource(show_spinner=False)
def _resources(data_dir: str, url: str) -> tuple[Settings, Engine]:
    settings = load_settings()
    return settings, open_database(settings)


def settings_and_engine() -> tuple[Settings, Engine]:
    settings = load_settings()
    return _resources(str(settings.data_dir), settings.database_url)


@st.cache_resource(show_spinner=False)
def _embedded_worker(data_dir: str, url: str):
    from core.worker import start_background_worker

    settings, engine = _resources(data_dir, url)
    return start_background_worker(settings, engine)


def ensure_worker() -> None:
    """The embedded default runs one worker thread in the app process (once per server).

    Set CXR_EMBEDDED_WORKER=0 when workers run as separate processes (GPU machines).
    """
    if os.environ.get("CXR_EMBEDDED_WORKER", "1") != "1":
        return
    settings = load_settings()
    _embedded_worker(str(settings.data_dir), settings.database_url)


@st.cache_resource(show_spinner=False)
def model_card(model_dir: str):
    """The card of the configured model, read without loading TensorFlow."""
    from core.model_card import ModelCard

    return ModelCard.load(model_dir)


def model_card_or_error(settings: Settings):
    """The card, or None after showing why the configured model folder is unusable."""
    from core.errors import ModelCardMismatch

    try:
        return model_card(str(settings.model_dir))
    except ModelCardMismatch as exc:
        from dashboard.text import plain

        st.error(f"The configured model ({plain(settings.model_dir)}) cannot be used: {plain(exc)}")
        return None
