"""The model's scores and the reviewer's verdict form on the review screen."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.model_card import MIN_THRESHOLD_SUPPORT
from db.reviews import StudyRecord

FLAGGED_CHOICES = {"correct": "present: flag correct", "incorrect": "absent: false positive"}
UNFLAGGED_CHOICES = {"correct": "absent: correct", "missed": "present: missed by the model"}


def domain_and_abnormal(study: StudyRecord) -> None:
    """The out-of-domain mark and the calibrated abnormal score, above everything else."""
    if study.outside_domain:
        st.error(
            "Outside the model's domain: this image does not look like the frontal chest radiographs the "
            f"model was trained on (domain score {study.domain_score or 0:.1f}). No finding is "
            "flagged and it does not count in the triage order; read it without the model.",
            icon="🚫",
        )
    if study.abnormal is not None:
        st.metric(
            "P(abnormal), calibrated",
            f"{100 * float(study.abnormal):.0f}%",
            help="1 - calibrated P(No Finding): how likely a reader finds something on this study",
        )


def scores_table(preds: pd.DataFrame, support: dict[str, int]) -> None:
    st.subheader("Model output")
    if preds.empty:
        st.write("No predictions stored.")
        return
    table = preds[["label", "probability", "threshold", "spread", "flagged"]].copy()
    if support:
        table["threshold basis"] = table["label"].map(
            lambda lab: (
                "?"
                if lab not in support
                else (
                    f"{support[lab]} positives"
                    if support[lab] >= MIN_THRESHOLD_SUPPORT
                    else f"unreliable: {support[lab]} positives"
                )
            )
        )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.3f"),
            "threshold": st.column_config.NumberColumn(format="%.3f"),
            "spread": st.column_config.NumberColumn("TTA spread (sd)", format="%.3f"),
        },
    )


def verdict_form(
    study_id: int, preds: pd.DataFrame, my_verdicts: dict[str, str], note: str
) -> tuple[dict[str, str], str] | None:
    """The form; returns (verdict per label, note) once submitted complete, else None."""
    if preds.empty:
        return None
    flags = dict(zip(preds["label"], preds["flagged"].astype(bool), strict=True))
    st.subheader("Your verdict")
    choices: dict[str, str | None] = {}
    with st.form(f"verdict_{study_id}"):
        for label, flagged in flags.items():
            options = FLAGGED_CHOICES if flagged else UNFLAGGED_CHOICES
            current = my_verdicts.get(label)
            index = list(options).index(current) if current in options else (None if flagged else 0)
            choices[label] = st.radio(
                f"{label} (flagged)" if flagged else label,
                list(options),
                index=index,
                format_func=options.get,
                horizontal=True,
                key=f"v_{study_id}_{label}",
            )
        text = st.text_area("Note", value=note, key=f"note_{study_id}", max_chars=5000)
        submitted = st.form_submit_button("Submit verdict and open next", type="primary")
    if not submitted:
        return None
    undecided = [lab for lab, v in choices.items() if v is None]
    if undecided:
        st.error("Mark every flagged finding as correct or incorrect: " + ", ".join(undecided))
        return None
    return {lab: str(v) for lab, v in choices.items()}, text
