"""Process-wide resources for the app: settings (built once), the database engine, the
embedded worker, the model card; and ``open_study``, the one way to open a study."""

from __future__ import annotations

import threading

import streamlit as st
from sqlalchemy import Engine

from core.config import Settings, load_settings
from core.model_card import ModelCard
from services.operations import open_database

DISCLAIMER = (
    "Screening aid for radiologist review, not a diagnosis. The model flags findings with a "
    "high false-positive rate by design; every study needs a radiologist's read."
)
REVIEW_PAGE = "pages/review.py"
STUDY_KEY = "study_id"

_override: Settings | None = None


def use_settings(settings: Settings | None) -> None:
    """Run the app on these settings instead of the environment's (tests build a Settings
    and pass it here; the app's own process never calls this)."""
    global _override
    _override = settings


@st.cache_resource(show_spinner=False)
def _environment_settings() -> Settings:
    return load_settings()


def settings() -> Settings:
    """The settings of this process: read from the environment once."""
    return _override if _override is not None else _environment_settings()


@st.cache_resource(show_spinner=False)
def _database(url: str, data_dir: str) -> Engine:
    return open_database(settings())


def settings_and_engine() -> tuple[Settings, Engine]:
    current = settings()
    return current, _database(current.database_url, str(current.data_dir))


@st.cache_resource(show_spinner=False)
def _embedded_worker(url: str, data_dir: str):
    from services.worker import start_background_worker

    current, engine = settings_and_engine()
    return start_background_worker(current, engine)


@st.cache_resource(show_spinner=False)
def _embedded_pacs_results(url: str, data_dir: str):
    from services.pacs.service import PacsResultsService

    current, engine = settings_and_engine()
    return PacsResultsService(engine, current).start()


def ensure_worker() -> None:
    """The embedded default runs one worker thread in the app process (once per server)
    and, where a PACS destination is configured, the PACS service's results loop beside it;
    CXR_EMBEDDED_WORKER=0 when workers and ``cxr pacs`` run as separate processes."""
    current = settings()
    if current.embedded_worker:
        _embedded_worker(current.database_url, str(current.data_dir))
        if current.destination is not None:
            _embedded_pacs_results(current.database_url, str(current.data_dir))


# modules the analytics and review pages need that take seconds to import (scikit-learn's
# metrics alone ~1.5 s on this machine's CPU)
SLOW_IMPORTS = ("core.metrics", "core.cohort", "services.thresholds", "plotly.express", "altair")


@st.cache_resource(show_spinner=False)
def warm_imports() -> threading.Thread:
    """Import the slow modules once per server in a background thread, so the first
    Analytics page of a fresh server does not wait for them (the import lock makes a page
    that needs one meanwhile wait only for the rest of that import)."""
    import importlib

    def run() -> None:
        for name in SLOW_IMPORTS:
            importlib.import_module(name)

    thread = threading.Thread(target=run, name="warm-imports", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def _embedded_receiver(url: str, data_dir: str):
    from services.pacs.receiver import start_receiver

    current, engine = settings_and_engine()
    return start_receiver(current, engine)


def ensure_receiver() -> None:
    """With CXR_EMBEDDED_RECEIVER=1 the app process also runs the DICOM receiver (once per
    server); otherwise run ``cxr receiver`` beside it."""
    current = settings()
    if current.embedded_receiver:
        try:
            _embedded_receiver(current.database_url, str(current.data_dir))
        except (ValueError, OSError) as exc:
            from dashboard.text import plain

            st.error(f"The DICOM receiver could not start: {plain(exc)}")


@st.cache_resource(show_spinner=False)
def model_card(model_dir: str) -> ModelCard:
    """The card of the configured model, read without loading TensorFlow."""
    return ModelCard.load(model_dir)


def model_card_or_error(current: Settings) -> ModelCard | None:
    """The card, or None after showing why the configured model folder is unusable."""
    from core.errors import ModelCardMismatch
    from services.retraining import current_model_dir

    _, engine = settings_and_engine()
    folder = current_model_dir(engine, current)  # the registry's current model (after a promotion)
    try:
        return model_card(str(folder))
    except ModelCardMismatch as exc:
        from dashboard.text import plain

        st.error(f"The current model ({plain(folder)}) cannot be used: {plain(exc)}")
        return None


def open_study(study_id: int) -> None:
    """Open a study on the Review page (from the worklist, analytics, an upload result)."""
    st.session_state[STUDY_KEY] = int(study_id)
    st.switch_page(REVIEW_PAGE, query_params={"study": str(int(study_id))})


def requested_study() -> int | None:
    """The study the Review page should show: the link's ?study=N, else the one opened
    last. An invalid link shows only its reason: the page stops there."""
    raw = st.query_params.get("study")
    if raw is not None:
        try:
            sid = int(raw)
        except ValueError:
            sid = 0
        if not 1 <= sid < 2**63:
            st.session_state.pop(STUDY_KEY, None)
            st.error("The study link is not valid: a study is named by its number, for example ?study=12.")
            st.stop()
        st.session_state[STUDY_KEY] = sid
    return st.session_state.get(STUDY_KEY)


def pin_study(study_id: int | None) -> None:
    """Make the Review page show this study until the reader moves on: in the session and
    in the link, so a rerun (or a reload) never shows another study under a form."""
    if study_id is None:
        st.session_state.pop(STUDY_KEY, None)
        st.query_params.clear()
    else:
        st.session_state[STUDY_KEY] = int(study_id)
        st.query_params["study"] = str(int(study_id))
