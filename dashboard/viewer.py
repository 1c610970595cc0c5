"""The image panel of the review screen: DICOM windowing, the stored preview otherwise,
and the Grad-CAM overlay of any label (stored PNG for flags, stored low-res maps else)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from core import storage
from core.display import (
    WINDOW_PRESETS,
    load_dicom_display,
    preset_window,
    render_window,
)
from core.gradcam import overlay, upsample
from core.labels import NO_FINDING
from core.verdict_rules import Mark
from dashboard.text import plain
from services.reading import InstanceRecord, StudyRecord


@st.cache_data(max_entries=8, show_spinner=False)
def _dicom_display(path: str):
    with open(path, "rb") as fh:
        return load_dicom_display(fh.read())


@st.cache_data(max_entries=16, show_spinner=False)
def _preview(preview_path: str, original_path: str) -> np.ndarray:
    """The stored 8-bit preview; rebuilt from the original if it has gone missing."""
    from core.decode import decode_bytes
    from core.pixel_transforms import to_uint8

    if Path(preview_path).is_file():
        return np.asarray(Image.open(preview_path).convert("L"))
    grey = to_uint8(decode_bytes(Path(original_path).read_bytes()).pixels)
    storage.atomic_write(Path(preview_path), storage.png_bytes(grey))
    return grey


@st.cache_data(max_entries=64, show_spinner=False)
def _heatmap(
    data_dir: str, study_id: int, version: str, label: str, png_path: str | None, width: int, height: int
) -> np.ndarray | None:
    """A stored full-size PNG for flagged labels; any other label from the stored maps."""
    if png_path:
        return np.asarray(Image.open(png_path), dtype=np.float32) / 255.0
    stored = storage.load_cams(Path(data_dir), study_id, version)
    if stored is None or label not in stored[1]:
        return None
    cams, labels = stored
    return upsample(cams[labels.index(label)], width, height)


def _cam_sources(data_dir: str, study_id: int, version: str) -> dict[str, int]:
    """Which image each stored map was computed on, read once per version of the maps file
    (every key press reruns the page; a re-analysis rewrites the file and its mtime)."""
    path = storage.safe_join(Path(data_dir), storage.cams_relpath(study_id, version))
    stamp = path.stat().st_mtime_ns if path.is_file() else 0
    return _cam_sources_at(data_dir, study_id, version, stamp)


@st.cache_data(max_entries=64, show_spinner=False)
def _cam_sources_at(data_dir: str, study_id: int, version: str, stamp: int) -> dict[str, int]:
    return storage.cam_sources(Path(data_dir), study_id, version)


def window_step(lo: float, hi: float) -> float:
    """A slider step of about 1/200 of the value range (whole values for integer data):
    an arrow key then moves the window visibly, never by 0.01 of a 4,096-value range."""
    raw = (hi - lo) / 200.0
    return float(max(1.0, round(raw))) if hi - lo >= 200 else float(max(raw, 1e-3))


def _windowed(path: Path) -> np.ndarray:
    display = _dicom_display(str(path))
    preset = st.segmented_control("Window preset", list(WINDOW_PRESETS), default="Default", key="wl_preset")
    center, width = preset_window(display.values, preset or "Default", (display.default_center, display.default_width))
    lo, hi = display.value_range
    hi = max(hi, lo + 1.0)  # a near-constant image must not make a slider with min == max
    step = window_step(lo, hi)
    c1, c2 = st.columns(2)
    center = c1.slider(
        "Window centre",
        float(lo),
        float(hi),
        float(np.clip(center, lo, hi)),
        step=step,
        key=f"wc_{preset}",
        help="Arrow keys move it 1/200 of the image's value range",
    )
    top = float(max(2.0, hi - lo))
    width = c2.slider("Window width", 1.0, top, float(np.clip(width, 1, top)), step=step, key=f"ww_{preset}")
    return render_window(display, center, width)


def _image_label(n: int, image: InstanceRecord) -> str:
    view = plain(image.view_position or "view unknown")  # from the file: text, never markup
    return f"{n}: {view}" + ("" if image.analysed else " (not analysed)")


THUMBS_PER_ROW = 6


@st.cache_data(max_entries=64, show_spinner=False)
def _thumbnail(preview_path: str, original_path: str, size: int = 64) -> np.ndarray:
    grey = Image.fromarray(_preview(preview_path, original_path))
    grey.thumbnail((size, size))
    return np.asarray(grey)


def _pick_image(key: str, n: int) -> None:
    st.session_state[key] = n


def _thumbnail_strip(data_dir: Path, study_id: int, images: list[InstanceRecord]) -> InstanceRecord:
    """A strip of the study's images, each a small picture over a button; returns the
    image picked (the first at opening)."""
    key = f"image_{study_id}"
    current = min(st.session_state.get(key, 0), len(images) - 1)
    for start in range(0, len(images), THUMBS_PER_ROW):
        cols = st.columns(THUMBS_PER_ROW, gap="small")
        for col, n in zip(cols, range(start, min(start + THUMBS_PER_ROW, len(images))), strict=False):
            image = images[n]
            with col:
                st.image(
                    _thumbnail(
                        str(storage.safe_join(data_dir, storage.preview_relpath(image.sha256))),
                        str(storage.safe_join(data_dir, image.stored_path)),
                    )
                )
                st.button(
                    _image_label(n + 1, image),
                    key=f"thumb_{study_id}_{n}",
                    type="primary" if n == current else "secondary",
                    on_click=_pick_image,
                    args=(key, n),
                    width="stretch",
                )
    return images[current]


def image_panel(
    data_dir: Path,
    study: StudyRecord,
    predictions: pd.DataFrame,
    heatmaps: dict[str, str],
    images: list[InstanceRecord] | None = None,
    marks: dict[str, Mark] | None = None,
    on_point: Callable[[Mark], None] | None = None,
) -> None:
    """The study's image (every image of it when there are several), window/level for
    DICOM, and the Grad-CAM overlay of any label on the image it was computed on; the
    reader's points (``marks``) drawn on it, and ``on_point`` told where a click lands."""
    images = images or []
    shown = images[0] if images else None
    if len(images) > 1:
        shown = _thumbnail_strip(data_dir, study.id, images)
    if shown is not None and not shown.analysed:
        st.caption(f"Not analysed: {plain(shown.not_analysed_reason)}")
    stored_path = shown.stored_path if shown else study.stored_path
    file_format = shown.file_format if shown else study.file_format
    sha = shown.sha256 if shown else study.sha256
    width, height = (shown.width, shown.height) if shown else (study.width, study.height)
    path = storage.safe_join(data_dir, stored_path)
    # a heatmap says where a finding is: never one for "No Finding"
    findings = predictions[predictions["label"] != NO_FINDING] if not predictions.empty else predictions
    flagged = findings.loc[findings["flagged"].astype(bool), "label"].tolist() if not findings.empty else []
    others = [lab for lab in findings["label"] if lab not in flagged] if not findings.empty else []
    options = ["(none)", *flagged, *others]
    c1, c2, c3, c4, c5, c6 = st.columns([2.4, 1.6, 1.7, 1.4, 1.4, 1.6], vertical_alignment="bottom")
    if file_format == "dicom":
        with c6.popover("Window", help="Window/level presets and sliders"):
            grey = _windowed(path)
    else:
        grey = _preview(str(storage.safe_join(data_dir, storage.preview_relpath(sha))), str(path))
    if st.session_state.get("cam_study") != study.id or st.session_state.get("cam_label") not in options:
        st.session_state["cam_label"] = options[1] if flagged else "(none)"  # a new study opens on its first flag
        st.session_state["cam_study"] = study.id
        st.session_state[MARKING_KEY] = False  # a new study opens for reading, not marking
    choice = c1.selectbox(
        "Grad-CAM overlay",
        options,
        key="cam_label",
        format_func=lambda x: x if x in flagged or x == "(none)" else f"{x} (on request)",
    )
    opacity = c2.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="cam_opacity")
    c3.button(
        "Overlay",
        key="toggle_overlay",
        shortcut="o",
        on_click=_toggle_overlay,
        args=(options, flagged),
        help="Show or hide the heatmap (O)",
    )
    c4.button("Invert", key="toggle_invert", shortcut="i", on_click=_toggle_invert, help="Invert the grey scale (I)")
    marking = bool(on_point) and st.session_state.get(MARKING_KEY, False)
    if on_point:
        c5.button(
            "Mark",
            key="toggle_marking",
            shortcut="m",
            type="primary" if marking else "secondary",
            on_click=_toggle_marking,
            help="Then click where the ▶ finding is (M)",
        )
    if st.session_state.get("invert"):
        grey = 255 - grey if grey.dtype == np.uint8 else 1.0 - grey
    image = grey
    if choice != "(none)":
        sources = _cam_sources(str(data_dir), study.id, study.model_version or "")
        if shown is not None and choice in sources and sources[choice] != shown.id:
            where = next((n for n, i in enumerate(images, start=1) if i.id == sources[choice]), "another")
            st.caption(f"The {plain(choice)} map was computed on image {where}: select it to see the overlay.")
        else:
            png = heatmaps.get(choice)
            heat = _heatmap(
                str(data_dir),
                study.id,
                study.model_version or "",
                choice,
                str(storage.safe_join(data_dir, png)) if png else None,
                width,
                height,
            )
            if heat is None:
                st.caption("No heatmap stored for this study.")
            else:
                image = overlay(grey, heat, opacity)
    title = f"Grad-CAM: {choice}" if choice != "(none)" and image is not grey else "Radiograph"
    # the box's height follows the window (CSS below): the image fits the screen it is read on
    top = VIEWER_TOP + (STRIP_HEIGHT if len(images) > 1 else 0)
    st.html(
        f"<style>.st-key-viewer_box, .st-key-viewer_box [data-testid=stPlotlyChart]"
        f"{{height:max({VIEWER_MIN_HEIGHT}px, calc(100vh - {top}px)) !important;}}</style>"
    )
    with st.container(key="viewer_box"):
        image_id = shown.id if shown is not None and len(images) > 1 else None
        here = {k: m for k, m in (marks or {}).items() if m.image_id == image_id}
        key = f"viewer_{study.id}_{image_id}"
        st.plotly_chart(
            _figure(image, "Click where the ▶ finding is" if marking else title, here, clickable=marking),
            config=VIEWER_CONFIG,
            key=key,
            height="stretch",
            on_select=(lambda: _clicked(key, image.shape, image_id, on_point)) if on_point else "ignore",
            selection_mode="points",
        )


VIEWER_CONFIG = {
    "responsive": True,
    "scrollZoom": True,
    "displaylogo": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}
VIEWER_TOP = 260  # page header, study line and viewer controls above the image, in pixels
STRIP_HEIGHT = 125  # the thumbnail strip of a study with several images
VIEWER_MIN_HEIGHT = 380


CLICK_GRID = 64  # clickable points across the image's longer side: a mark's precision
MARKING_KEY = "marking"  # the reader is placing a point: the next click on the image is one


def _figure(image: np.ndarray, title: str, marks: dict[str, Mark] | None = None, clickable: bool = False):
    """The image as a zoomable, pannable plotly figure (wheel zooms, drag pans, double
    click resets), sent as one PNG rather than as a matrix of numbers, with the reader's
    marks drawn. ``clickable`` (marking mode) lays an invisible grid of points over it that
    turns a click into a position: 4,096 SVG points slow every render of the image
    (bench.browser: submit -> next 0.99 s -> 1.44 s), so only while a point is placed."""
    import plotly.express as px
    import plotly.graph_objects as go

    h, w = image.shape[:2]
    fig = px.imshow(image, binary_string=True, binary_compression_level=1)
    if clickable:
        step = max(h, w) / CLICK_GRID
        xs, ys = np.meshgrid(np.arange(step / 2, w, step), np.arange(step / 2, h, step))
        invisible = {"marker": {"opacity": 0}}
        fig.add_trace(
            go.Scatter(
                x=xs.ravel(),
                y=ys.ravel(),
                mode="markers",
                marker={"size": 12, "color": "rgba(0,0,0,0)"},
                selected=invisible,
                unselected=invisible,
                hoverinfo="none",
                showlegend=False,
            )
        )
    if marks:
        fig.add_trace(
            go.Scatter(
                x=[m.x * w for m in marks.values()],
                y=[m.y * h for m in marks.values()],
                text=list(marks),  # label names: plotly draws text, not markup
                mode="markers+text",
                textposition="top center",
                textfont={"color": "#ffd166"},
                marker={"symbol": "x-thin-open", "size": 16, "line": {"width": 3, "color": "#ffd166"}},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 13}},
        dragmode="pan",
        margin={"l": 0, "r": 0, "t": 28, "b": 0},
    )
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5])
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5])
    return fig


def _clicked(key: str, shape: tuple[int, ...], image_id: int | None, on_point: Callable[[Mark], None]) -> None:
    """A click on the image's grid: its position as fractions of the image, to ``on_point``."""
    points = st.session_state[key].selection.points
    if points and st.session_state.get(MARKING_KEY):
        st.session_state[MARKING_KEY] = False  # one click, one point
        h, w = shape[:2]
        x, y = float(points[0]["x"]), float(points[0]["y"])
        on_point(Mark(min(max(x / w, 0.0), 1.0), min(max(y / h, 0.0), 1.0), image_id))


def _toggle_overlay(options: list[str], flagged: list[str]) -> None:
    current = st.session_state.get("cam_label", "(none)")
    remembered = st.session_state.get("last_overlay") or (
        flagged[0] if flagged else options[1] if len(options) > 1 else "(none)"
    )
    if current == "(none)":
        st.session_state["cam_label"] = remembered if remembered in options else "(none)"
    else:
        st.session_state["last_overlay"], st.session_state["cam_label"] = current, "(none)"


def _toggle_marking() -> None:
    st.session_state[MARKING_KEY] = not st.session_state.get(MARKING_KEY, False)


def _toggle_invert() -> None:
    st.session_state["invert"] = not st.session_state.get("invert", False)
