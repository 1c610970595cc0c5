"""Review: the image with window/level and Grad-CAM overlays, the 15 scores, verdicts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from core import storage
from core.display import WINDOW_PRESETS, load_dicom_display, preset_window, render_window
from core.gradcam import overlay, upsample
from core.labels import LABELS
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, model_card, settings_and_engine
from dashboard.text import plain
from db.reviews import load_study, next_study, submit_review

FLAGGED_CHOICES = {"correct": "present: flag correct", "incorrect": "absent: false positive"}
UNFLAGGED_CHOICES = {"correct": "absent: correct", "missed": "present: missed by the model"}


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
def _heatmap(data_dir: str, study_id: int, version: str, label: str, png_path: str | None,
             width: int, height: int) -> np.ndarray | None:
    """A stored full-size PNG for flagged labels; any other label from the stored maps."""
    from core.worker import load_cams

    if png_path:
        return np.asarray(Image.open(png_path), dtype=np.float32) / 255.0
    stored = load_cams(Path(data_dir), study_id, version)
    if stored is None:
        return None
    cams, labels = stored
    return upsample(cams[labels.index(label)], width, height)


def _study_id(settings, engine, user) -> int | None:
    raw = st.query_params.get("study")
    if raw is not None:
        try:
            sid = int(raw)
            if not 1 <= sid < 2**63:
                raise ValueError(raw)
            st.session_state["study_id"] = sid
        except ValueError:
            st.error("The study link is not valid.")
    if "study_id" not in st.session_state:
        st.session_state["study_id"] = next_study(engine, -1, settings.overdue_hours, user.id)
    return st.session_state.get("study_id")


def render() -> None:
    user = require_user()
    settings, engine = settings_and_engine()
    sid = _study_id(settings, engine, user)
    if sid is None:
        st.title("Review")
        st.info("Nothing to review: the worklist is empty.")
        return
    view = load_study(engine, sid, user.id)
    if view is None:
        st.error(f"Study {sid} does not exist.")
        return
    study = view.study
    st.title(f"Review: study {sid}")
    st.caption(f"{plain(study['original_name'])} · {plain(study['file_format'].upper())} · "
               f"{study['width']}x{study['height']} · view {plain(study['view_position'] or 'unknown')} · "
               f"uploaded {study['created_at']:%Y-%m-%d %H:%M}")
    st.warning(DISCLAIMER, icon="⚠️")
    if study["status"] != "done":
        msg = f"Status: {study['status']}."
        st.info(msg + (f" Error: {plain(study['error'])}" if study["error"]
                       else " Results appear when the worker has analysed it."))
        return
    _domain_and_abnormal(study)
    if view.other_reviews:
        st.caption(f"{view.other_reviews} other reviewer(s) have reviewed this study; their verdicts are kept separately.")
    left, right = st.columns([3, 2])
    with left:
        _image_panel(settings, study, view)
    with right:
        _scores_panel(view.predictions, _threshold_support(settings))
        _verdict_form(settings, engine, user, sid, view)


def _image_panel(settings, study: dict, view) -> None:
    path = storage.safe_join(settings.data_dir, study["stored_path"])
    if study["file_format"] == "dicom":
        display = _dicom_display(str(path))
        preset = st.segmented_control("Window preset", list(WINDOW_PRESETS), default="Default", key="wl_preset")
        center, width = preset_window(display.values, preset or "Default",
                                      (display.default_center, display.default_width))
        lo, hi = display.value_range
        hi = max(hi, lo + 1.0)  # a near-constant image must not make a slider with min == max
        c1, c2 = st.columns(2)
        center = c1.slider("Window centre", float(lo), float(hi), float(np.clip(center, lo, hi)), key=f"wc_{preset}")
        width = c2.slider("Window width", 1.0, float(max(2.0, hi - lo)), float(np.clip(width, 1, max(2.0, hi - lo))),
                          key=f"ww_{preset}")
        grey = render_window(display, center, width)
    else:
        grey = _preview(str(storage.safe_join(settings.data_dir, storage.preview_relpath(study["sha256"]))), str(path))
    preds = view.predictions
    flagged = preds.loc[preds["flagged"].astype(bool), "label"].tolist() if not preds.empty else []
    options = ["(none)"] + flagged + [lab for lab in LABELS if lab not in flagged]
    c1, c2 = st.columns([2, 1])
    choice = c1.selectbox("Grad-CAM overlay", options, index=1 if flagged else 0, key="cam_label",
                          format_func=lambda x: x if x in flagged or x == "(none)" else f"{x} (on request)")
    opacity = c2.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="cam_opacity")
    image = grey
    if choice != "(none)":
        png = view.heatmaps.get(choice)
        heat = _heatmap(str(settings.data_dir), int(study["id"]), study["model_version"], choice,
                        str(storage.safe_join(settings.data_dir, png)) if png else None, study["width"], study["height"])
        if heat is None:
            st.caption("No heatmap stored for this study.")
        else:
            image = overlay(grey, heat, opacity)
    st.image(image, caption=f"Grad-CAM: {choice}" if choice != "(none)" else "Radiograph", width="content")


def _domain_and_abnormal(study: dict) -> None:
    """The out-of-domain mark and the calibrated abnormal score, above everything else."""
    if study.get("in_domain") is False or study.get("in_domain") == 0:
        st.error("Outside the model's domain: this image does not look like the frontal chest radiographs the "
                 f"model was trained on (domain score {study.get('domain_score') or 0:.1f}). No finding is "
                 "flagged and it does not count in the triage order; read it without the model.", icon="🚫")
    if study.get("abnormal") is not None:
        st.metric("P(abnormal), calibrated", f"{100 * float(study['abnormal']):.0f}%",
                  help="1 - calibrated P(No Finding): how likely a reader finds something on this study")


def _threshold_support(settings) -> dict[str, int]:
    """Validation positives behind each threshold, from the model card (empty if unknown)."""
    try:
        return dict(model_card(str(settings.model_dir)).threshold_support)
    except Exception:  # the card is shown as an error on the Model page; scores still show
        return {}


def _scores_panel(preds: pd.DataFrame, support: dict[str, int] | None = None) -> None:
    from core.model_card import MIN_THRESHOLD_SUPPORT

    st.subheader("Model output")
    if preds.empty:
        st.write("No predictions stored.")
        return
    table = preds[["label", "probability", "threshold", "spread", "flagged"]].copy()
    if support:
        table["threshold basis"] = table["label"].map(
            lambda lab: "?" if lab not in support else
            (f"{support[lab]} positives" if support[lab] >= MIN_THRESHOLD_SUPPORT
             else f"unreliable: {support[lab]} positives"))
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.3f"),
        "threshold": st.column_config.NumberColumn(format="%.3f"),
        "spread": st.column_config.NumberColumn("TTA spread (sd)", format="%.3f"),
    })


def _verdict_form(settings, engine, user, sid: int, view) -> None:
    preds = view.predictions.set_index("label") if not view.predictions.empty else None
    if preds is None:
        return
    st.subheader("Your verdict")
    choices: dict[str, str | None] = {}
    with st.form(f"verdict_{sid}"):
        for label in view.predictions["label"]:
            flagged = bool(preds.loc[label, "flagged"])
            options = FLAGGED_CHOICES if flagged else UNFLAGGED_CHOICES
            current = view.my_verdicts.get(label)
            index = list(options).index(current) if current in options else (None if flagged else 0)
            choices[label] = st.radio(f"{label} (flagged)" if flagged else label, list(options), index=index,
                                      format_func=options.get, horizontal=True, key=f"v_{sid}_{label}")
        note = st.text_area("Note", value=view.note, key=f"note_{sid}", max_chars=5000)
        submitted = st.form_submit_button("Submit verdict and open next", type="primary")
    if not submitted:
        return
    undecided = [lab for lab, v in choices.items() if v is None]
    if undecided:
        st.error("Mark every flagged finding as correct or incorrect: " + ", ".join(undecided))
        return
    changed = submit_review(engine, sid, user.id, choices, note, actor=user.username)
    st.session_state["last_submitted"] = (sid, changed)
    nxt = next_study(engine, sid, settings.overdue_hours, user.id)
    st.query_params.clear()
    if nxt is None:
        st.session_state.pop("study_id", None)
        st.success("Verdict saved. No more studies waiting for you.")
        return
    st.session_state["study_id"] = nxt
    st.rerun()
