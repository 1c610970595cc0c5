"""The model's scores and the reviewer's verdict form on the review screen."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.model_card import MIN_THRESHOLD_SUPPORT
from dashboard.text import plain
from db.reviews import StudyRecord

PANEL_HEIGHT = 330  # with the note and Submit below it, the panel fits a 720-pixel screen
FLAGGED_CHOICES = {"correct": "present: flag correct", "incorrect": "absent: false positive"}
UNFLAGGED_CHOICES = {"correct": "absent: correct", "missed": "present: missed"}


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
        st.markdown(
            f"**P(abnormal) {100 * float(study.abnormal):.0f}%**",
            help="Calibrated 1 - P(No Finding): how likely a reader finds something on this study",
        )


def probability_bar(p: float, threshold: float, width: int = 12) -> str:
    """A text bar of the calibrated probability with the threshold marked: '▇▇▇▇▇░░│░░ 41%'.
    Plain characters, so no markup is involved."""
    filled = int(round(max(0.0, min(1.0, p)) * width))
    mark = min(width - 1, int(round(max(0.0, min(1.0, threshold)) * width)))
    cells = ["▇" if i < filled else "░" for i in range(width)]
    cells[mark] = "┃"
    return "".join(cells) + f" {100 * p:.0f}%"


def scores_table(preds: pd.DataFrame, support: dict[str, int]) -> None:
    """The full scores table (TTA spread, threshold basis) for those who want every number."""
    if preds.empty:
        st.write("No predictions stored.")
        return
    table = preds[["label", "probability", "threshold", "flagged", "spread"]].copy()
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
    with st.expander("All scores (TTA spread, threshold basis)", expanded=False):
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            height=38 + 35 * len(table),  # every row visible, no inner scrolling
            column_config={
                "probability": st.column_config.ProgressColumn(
                    "probability", min_value=0.0, max_value=1.0, format="%.3f"
                ),
                "threshold": st.column_config.NumberColumn(format="%.3f", width="small"),
                "flagged": st.column_config.CheckboxColumn(width="small"),
                "spread": st.column_config.NumberColumn("TTA spread (sd)", format="%.3f", width="small"),
            },
        )


def verdict_form(
    study_id: int, preds: pd.DataFrame, my_verdicts: dict[str, str], note: str
) -> tuple[dict[str, str], str] | None:
    """One compact row per label (probability bar with its threshold mark, flag, verdict);
    returns (verdict per label, note) once submitted complete, else None."""
    if preds.empty:
        return None
    rows = preds.sort_values(["flagged", "probability"], ascending=[False, False])
    st.markdown("**Your verdict** · ⚑ flagged by the model · ┃ threshold")
    choices: dict[str, str | None] = {}
    with st.form(f"verdict_{study_id}", border=False):
        with st.container(height=PANEL_HEIGHT, border=True):  # every row reachable, Submit always in view
            for row in rows.itertuples():
                flagged = bool(row.flagged)
                options = FLAGGED_CHOICES if flagged else UNFLAGGED_CHOICES
                current = my_verdicts.get(row.label)
                index = list(options).index(current) if current in options else (None if flagged else 0)
                left, right = st.columns([5, 6], vertical_alignment="center", gap="small")
                left.markdown(
                    f"{'⚑ ' if flagged else ''}**{plain(row.label)}**  \n"
                    f"`{probability_bar(row.probability, row.threshold)}`"
                )
                choices[row.label] = right.radio(
                    f"{row.label} (flagged)" if flagged else row.label,
                    list(options),
                    index=index,
                    format_func=options.get,
                    key=f"v_{study_id}_{row.label}",
                    label_visibility="collapsed",
                )
        text = st.text_input(
            "Note",
            value=note,
            key=f"note_{study_id}",
            max_chars=5000,
            placeholder="Note (optional)",
            label_visibility="collapsed",
        )
        submitted = st.form_submit_button("Submit verdict and open next", type="primary", shortcut="ctrl+enter")
    if not submitted:
        return None
    undecided = [lab for lab, v in choices.items() if v is None]
    if undecided:
        st.error("Mark every flagged finding as correct or incorrect: " + ", ".join(undecided))
        return None
    return {lab: str(v) for lab, v in choices.items()}, text
