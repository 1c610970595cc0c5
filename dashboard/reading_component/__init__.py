"""The reading screen's viewer and verdict panel as one Streamlit Custom Components v2
component (no iframe): its TypeScript frontend (``frontend/``, built with Vite into
``static/reader.js``, which is committed so running the app needs no Node) owns the keys,
the windowing and the overlays; Python hears from it only when the reader submits a read
(``submit``) or asks for the next study (``navigate``).

Rebuild after changing the frontend: ``cd dashboard/reading_component/frontend && npm ci
&& npm run build``. The test command checks that the committed bundle equals a fresh build.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

BUNDLE = Path(__file__).parent / "static" / "reader.js"
KEY = "cxr_reader"

_mount = st.components.v2.component("cxr_reader", js=BUNDLE.read_text(encoding="utf-8"))


def reading_component(data: dict[str, Any], on_submit: Callable[[], None], on_navigate: Callable[[], None]) -> None:
    """Mount the reader with this study's data; the callbacks run before the next script
    run, reading the trigger from ``st.session_state[KEY]`` (see :func:`trigger`)."""
    _mount(key=KEY, data=data, on_submit_change=on_submit, on_navigate_change=on_navigate, height="content")


def trigger(name: str) -> Any:
    """The value a trigger carries in the run it fired (None otherwise)."""
    state = st.session_state.get(KEY)
    return None if state is None else state.get(name) if isinstance(state, dict) else getattr(state, name, None)
