"""The review screen's rows in reading order and the full scores table under the reader."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.model_card import MIN_THRESHOLD_SUPPORT


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


def panel_rows(preds: pd.DataFrame) -> pd.DataFrame:
    """The verdict rows in the panel's order: flagged first, most probable first."""
    return preds.sort_values(["flagged", "probability"], ascending=[False, False])


def panel_order(preds: pd.DataFrame) -> tuple[list[str], list[bool]]:
    """The rows' labels and flags in the panel's order: the form, the keyboard and a click
    on the image all count rows in this order."""
    rows = panel_rows(preds)
    return [str(lab) for lab in rows["label"]], [bool(f) for f in rows["flagged"]]
