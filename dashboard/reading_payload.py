"""What the reading component is sent for one study: the verdict rows, every image of the
study as 16-bit display values behind a media URL (windowed in the browser), the chest
presets and pixel spacing, the stored Grad-CAM maps at feature-map resolution (upsampled
in the browser; never one for "No Finding"), the reader's marks, and the next study's
image URLs to prefetch. Every string in it is text the component sets as text, never markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core import storage
from core.display import BrowserPixels, DisplayImage, browser_pixels, chest_presets, load_dicom_display
from core.labels import NO_FINDING
from core.verdict_rules import Mark, RowState, states_from_verdicts
from dashboard.verdicts import panel_order
from services.reading import InstanceRecord, ReviewCase, StudyRecord

MEDIA_TYPE = "application/octet-stream"
MIN_LOOK_MS = 1000  # a submission sooner after its study appeared is a double press, not a read


@dataclass(frozen=True)
class ImageFile:
    """One image of a study as the viewer needs it: where its file is, and its identity."""

    image_id: int | None  # the study image (instance) id; None for a study stored without instances
    path: Path
    is_dicom: bool
    view: str
    analysed: bool
    not_analysed_reason: str | None


def image_files(data_dir: Path, study: StudyRecord, images: list[InstanceRecord]) -> list[ImageFile]:
    """The study's images in their stored order (the study's own file when it has no instances)."""
    if not images:
        path = storage.safe_join(data_dir, study.stored_path)
        return [ImageFile(None, path, study.file_format == "dicom", study.view_position or "", True, None)]
    return [
        ImageFile(
            i.id,
            storage.safe_join(data_dir, i.stored_path),
            i.file_format == "dicom",
            i.view_position or "",
            i.analysed,
            i.not_analysed_reason,
        )
        for i in images
    ]


def display_image(path: Path, is_dicom: bool) -> DisplayImage:
    """Modality values and default window of a DICOM; a raster's decoded grey values
    (0 to 1, white dense) with the full range as its window."""
    data = path.read_bytes()
    if is_dicom:
        return load_dicom_display(data)
    from core.decode import decode_bytes

    values = decode_bytes(data).pixels
    lo, hi = float(values.min()), float(values.max())
    return DisplayImage(values, (lo + hi) / 2.0, max(hi - lo, 1e-6), False)


@st.cache_resource(max_entries=12, show_spinner=False)
def _encoded(path: str, is_dicom: bool, stamp: int) -> tuple[BrowserPixels, dict[str, Any]]:
    """Decode and pack an image once per file version (the same study is sent again on
    every rerun, and the prefetched one is packed before it is opened). A resource cache:
    the packed pixels (megabytes, immutable) are shared, not copied out on every run."""
    image = display_image(Path(path), is_dicom)
    packed = browser_pixels(image.values)
    meta = {
        "rows": packed.rows,
        "cols": packed.cols,
        "offset": packed.offset,
        "scale": packed.scale,
        "window": [image.default_center, image.default_width],
        "presets": {str(k): list(v) for k, v in chest_presets(image).items()},
        "invert": image.invert,
        "spacing": list(image.spacing_mm) if image.spacing_mm else None,
    }
    return packed, meta


def _media_url(data: bytes, coordinates: str) -> str:
    """Serve bytes at an unguessable media URL for this session (how st.image serves its
    pictures); the file lives while this session's latest run refers to it."""
    from streamlit import runtime

    return runtime.get_instance().media_file_mgr.add(data, MEDIA_TYPE, coordinates)


def image_entry(image: ImageFile, study_id: int) -> dict[str, Any]:
    """One image for the viewer: its pixels' URL and how to read and window them."""
    packed, meta = _encoded(str(image.path), image.is_dicom, image.path.stat().st_mtime_ns)
    return {
        "id": image.image_id,
        "url": _media_url(packed.data, f"cxr_reader.{study_id}.{image.image_id}"),
        "view": image.view,
        "analysed": image.analysed,
        "not_analysed": image.not_analysed_reason or "",
        **meta,
    }


def heatmap_entries(data_dir: Path, study: StudyRecord) -> dict[str, dict[str, Any]]:
    """The stored Grad-CAM maps (one per finding, at the model's feature-map resolution)
    and the image each was computed on; the browser upsamples them. None for No Finding."""
    stored = storage.load_cams(data_dir, study.id, study.model_version or "")
    if stored is None:
        return {}
    cams, labels = stored
    sources = storage.cam_sources(data_dir, study.id, study.model_version or "")
    out: dict[str, dict[str, Any]] = {}
    for cam, label in zip(cams, labels, strict=True):
        if label == NO_FINDING:
            continue
        grid = np.clip(np.nan_to_num(cam.astype(np.float64)), 0.0, 1.0)
        out[label] = {
            "image_id": sources.get(label),
            "rows": int(grid.shape[0]),
            "cols": int(grid.shape[1]),
            "values": [round(float(v), 4) for v in grid.ravel()],
        }
    return out


def verdict_rows(preds: pd.DataFrame, my_verdicts: dict[str, str]) -> list[dict[str, Any]]:
    """The panel's rows in reading order (flagged first, most probable first), each with
    the reader's stored state when they have read the study."""
    if preds.empty:
        return []
    labels, flags = panel_order(preds)
    by_label = preds.set_index("label")
    states = states_from_verdicts(my_verdicts, dict(zip(labels, flags, strict=True)))
    return [
        {
            "label": label,
            "probability": float(by_label.at[label, "probability"]),
            "threshold": float(by_label.at[label, "threshold"]),
            "flagged": flagged,
            "state": str(states.get(label, RowState.UNSET)),
        }
        for label, flagged in zip(labels, flags, strict=True)
    ]


def mark_entries(marks: dict[str, Mark]) -> dict[str, dict[str, Any]]:
    return {label: {"x": m.x, "y": m.y, "image_id": m.image_id} for label, m in marks.items()}


def study_payload(
    data_dir: Path,
    case: ReviewCase,
    images: list[InstanceRecord],
    *,
    read_only_reason: str | None,
    notice: dict[str, str] | None,
    prefetch: list[str],
) -> dict[str, Any]:
    """Everything the component shows for one study (see the frontend's ``ReaderData``)."""
    study = case.study
    return {
        "study_id": study.id,
        "read_only": read_only_reason is not None,
        "reason": read_only_reason or "",
        "abnormal": None if study.abnormal is None else float(study.abnormal),
        "outside_domain": bool(study.outside_domain),
        "rows": verdict_rows(case.predictions, case.my_verdicts),
        "images": [image_entry(i, study.id) for i in image_files(data_dir, study, images)],
        "heatmaps": heatmap_entries(data_dir, study),
        "marks": mark_entries(case.my_marks),
        "note": case.note or "",
        "notice": notice,
        "min_look_ms": MIN_LOOK_MS,
        "prefetch": prefetch,
    }


def prefetch_urls(data_dir: Path, study: StudyRecord, images: list[InstanceRecord]) -> list[str]:
    """The media URLs of the next study's images, packed now so that opening it costs no
    decoding; the browser fetches and unpacks them while the reader reads this one."""
    return [image_entry(i, study.id)["url"] for i in image_files(data_dir, study, images)]
