"""Model: the card, so a reviewer knows how far to trust a score."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, model_card_or_error, settings_and_engine


def render() -> None:
    require_user()
    settings, _ = settings_and_engine()
    card = model_card_or_error(settings)
    if card is None:
        return
    st.title(f"Model: {card.name}")
    st.caption(f"version {card.version} · thresholds {card.threshold_version} · input {card.input_size}px")
    st.warning(DISCLAIMER, icon="⚠️")
    st.caption(f"Intended use: {card.intended_use}")
    st.subheader("Held-out evaluation")
    ev = card.evaluation
    if ev:
        c = st.columns(3)
        c[0].metric(f"Mean AUC, the {ev.get('n_findings_with_positives')} findings with positives",
                    ev.get("mean_auc_findings"))
        c[1].metric("Mean AUC, all labels with positives (incl. No Finding)", ev.get("mean_auc_15_labels"))
        c[2].metric("Abnormal vs No Finding AUC", ev.get("abnormal_vs_no_finding_auc"))
        st.caption(f"{ev.get('n_images')} images of {ev.get('n_patients')} patients; {ev.get('split')}; "
                   f"{ev.get('bootstrap')}; {ev.get('tta_views')} TTA views.")
        rows = [{"label": k, "AUC": v["auc"], "95% CI low": v["ci95"][0], "95% CI high": v["ci95"][1],
                 "positives": v["n_positive"], "negatives": v["n_negative"],
                 "threshold": card.thresholds.get(k)} for k, v in ev["per_label"].items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.subheader("Thresholds")
    st.write(card.threshold_method)
    st.subheader("Training data")
    st.json(card.training, expanded=False)
    st.subheader("Architecture and preprocessing")
    st.write(card.architecture)
    st.json(card.preprocessing)
