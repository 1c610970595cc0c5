"""Analytics: per-finding ROC and operating points, false-positive analysis, calibration,
agreement, volume over time, and CSV exports, over a selection of the stored cohort."""

import numpy as np
import streamlit as st

from dashboard import analytics_tabs as tabs
from dashboard.analytics_data import (
    Selection,
    cohort_details,
    compute,
    false_positive_tables,
    roc_curves,
    selection,
)
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, model_card_or_error, settings_and_engine
from services.analytics import data_stamp, model_versions
from services.exports import record_export, verdicts_csv
from services.thresholds import decide, save_proposal
from services.worklist import reviewers

user = require_user()
settings, engine = settings_and_engine()
st.title("Cohort analytics")
st.caption(DISCLAIMER)
card = model_card_or_error(settings)
if card is None:
    st.stop()
flt, source, rule, rule_reviewer = selection(reviewers(engine), model_versions(engine))
chosen = Selection(data_stamp(engine), flt, tuple(card.labels), source, rule, rule_reviewer)
figures = compute(engine, chosen)
data, cohort, table, n_boot = figures.data, figures.cohort, figures.table, figures.n_boot
if table.empty:
    st.info("No study in this selection has ground truth yet: review studies or import reference labels.")
    st.stop()
n_known = int((~np.isnan(cohort.truth)).any(axis=1).sum())
st.caption(
    f"{n_known} studies with ground truth; AUC 95% CIs from {n_boot} bootstrap resamples by patient "
    "where known, else by study."
)


def operating_points_section() -> None:
    """Proposed thresholds and, for an admin, saving them as a new version (guarded)."""
    kind, target, points = tabs.operating_points(cohort, list(table["finding"]))
    if not user.is_admin:
        st.caption("Only an administrator can save a threshold set.")
    else:
        decision = decide(points, settings.min_threshold_positives)
        st.caption(
            f"A finding's threshold is saved only when it rests on at least {settings.min_threshold_positives}"
            " positives (CXR_MIN_THRESHOLD_POSITIVES); the others keep their current thresholds."
        )
        if st.button("Save as a new threshold version for new predictions", key="op_save"):
            if decision.refused:
                st.error(
                    f"Not saved: no finding has {settings.min_threshold_positives} positives in this selection "
                    "(" + "; ".join(f"{k}: {v}" for k, v in decision.kept.items()) + ")."
                )
            else:
                method = f"{kind} {target:.2f} on reviewed cohort"
                version = save_proposal(engine, card, decision, method, user.id, user.username)
                kept = ", ".join(decision.kept) or "none"
                st.success(
                    f"Saved threshold set {version} for {', '.join(decision.saved)}; kept current thresholds "
                    f"for {kept}. Predictions made before keep their own thresholds."
                )


def export_section() -> None:
    """Metrics and verdict exports, for administrators; each export is audited."""
    if not user.is_admin:
        st.caption("Exports are for administrators.")
    else:
        from core.export import safe_csv

        st.download_button(
            "Metrics table (CSV)",
            safe_csv(table),
            "metrics.csv",
            "text/csv",
            on_click=record_export,
            args=(engine, user.username, "metrics"),
            key="dl_metrics",
        )
        if st.button("Prepare the verdicts export", key="prep_verdicts"):
            st.session_state["verdicts_csv"] = verdicts_csv(engine, flt)
        if "verdicts_csv" in st.session_state:
            st.download_button(
                "Verdicts (CSV)",
                st.session_state["verdicts_csv"],
                "verdicts.csv",
                "text/csv",
                on_click=record_export,
                args=(engine, user.username, "verdicts"),
                key="dl_verdicts",
            )


# lazy tabs: only the open one runs and is sent (the page's cost is one section, not seven)
per_finding, false_pos, op_points, calibration, agreement, over_time, export = st.tabs(
    ["Per finding", "False positives", "Operating points", "Calibration", "Agreement", "Over time", "Export"],
    key="an_tab",
    on_change="rerun",
)
if per_finding.open:
    with per_finding:
        tabs.per_finding(table, lambda finding: roc_curves(engine, chosen, finding))
if false_pos.open:
    with false_pos:
        tabs.false_positive_tab(*false_positive_tables(engine, chosen))
if op_points.open:
    with op_points:
        operating_points_section()
if calibration.open:
    with calibration:
        tabs.calibration(cohort, table)
if agreement.open:
    with agreement:
        tabs.agreement(data)
if over_time.open:
    with over_time:
        tabs.over_time(cohort, cohort_details(engine, chosen))
if export.open:
    with export:
        export_section()
