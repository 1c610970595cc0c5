"""The image panel of the review screen: DICOM windowing, the stored preview otherwise,
and the Grad-CAM overlay of any label (stored PNG for flags, stored low-res maps else)."""

from __future__ import annotations

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
from db.reviews import StudyRecord
from db.studies import InstanceRecord


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


def _windowed(path: Path) -> np.ndarray:
    display = _dicom_display(str(path))
    preset = st.segmented_control("Window preset", list(WINDOW_PRESETS), default="Default", key="wl_preset")
    center, width = preset_window(display.values, preset or "Default", (display.default_center, display.default_width))
    lo, hi = display.value_range
    hi = max(hi, lo + 1.0)  # a near-constant image must not make a slider with min == max
    c1, c2 = st.columns(2)
    center = c1.slider("Window centre", float(lo), float(hi), float(np.clip(center, lo, hi)), key=f"wc_{preset}")
    width = c2.slider(
        "Window width", 1.0, float(max(2.0, hi - lo)), float(np.clip(width, 1, max(2.0, hi - lo))), key=f"ww_{preset}"
    )
    return render_window(display, center, width)


def _image_label(n: int, image: InstanceRecord) -> str:
    view = image.view_position or "view unknown"
    return f"{n}: {view}" + ("" if image.analysed else " (not analysed)")


def image_panel(
    data_dir: Path,
    study: StudyRecord,
    predictions: pd.DataFrame,
    heatmaps: dict[str, str],
    images: list[InstanceRecord] | None = None,
) -> None:
    """The study's image (every image of it when there are several), window/level for
    DICOM, and the Grad-CAM overlay of any label on the image it was computed on."""
    images = images or []
    shown = images[0] if images else None
    if len(images) > 1:
        labels = [_image_label(n, image) for n, image in enumerate(images, start=1)]
        pick = st.radio("Image", labels, horizontal=True, key=f"image_{study.id}")
        shown = images[labels.index(pick)]
    if shown is not None and not shown.analysed:
        st.caption(f"Not analysed: {shown.not_analysed_reason}")
    stored_path = shown.stored_path if shown else study.stored_path
    file_format = shown.file_format if shown else study.file_format
    sha = shown.sha256 if shown else study.sha256
    width, height = (shown.width, shown.height) if shown else (study.width, study.height)
    path = storage.safe_join(data_dir, stored_path)
    if file_format == "dicom":
        grey = _windowed(path)
    else:
        grey = _preview(str(storage.safe_join(data_dir, storage.preview_relpath(sha))), str(path))
    flagged = predictions.loc[predictions["flagged"].astype(bool), "label"].tolist() if not predictions.empty else []
    others = [lab for lab in predictions["label"] if lab not in flagged] if not predictions.empty else []
    c1, c2 = st.columns([2, 1])
    choice = c1.selectbox(
        "Grad-CAM overlay",
        ["(none)", *flagged, *others],
        index=1 if flagged else 0,
        key="cam_label",
        format_func=lambda x: x if x in flagged or x == "(none)" else f"{x} (on request)",
    )
    opacity = c2.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="cam_opacity")
    image = grey
    if choice != "(none)":
        sources = storage.cam_sources(data_dir, study.id, study.model_version or "")
        if shown is not None and choice in sources and sources[choice] != shown.id:
            where = next((n for n, i in enumerate(images, start=1) if i.id == sources[choice]), "another")
            st.caption(f"The {choice} map was computed on image {where}: select it to see the overlay.")
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
    st.image(image, caption=f"Grad-CAM: {choice}" if choice != "(none)" else "Radiograph", width="content")
