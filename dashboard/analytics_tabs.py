"""The tabs of the Analytics page: per-finding ROC and operating points, false positives,
calibration, agreement and volume over time. Statistics come from core.cohort/metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import metrics
from core.cohort import co_flagged_in_false_positives, cohen_kappa_by_finding
from dashboard.analytics_data import RocCurves
from dashboard.state import open_study
from services.thresholds import TARGET_KINDS, propose


def fmt_ci(v, lo, hi) -> str:
    return "n/a" if pd.isna(v) else f"{v:.3f} ({lo:.3f}–{hi:.3f})"


def per_finding(table: pd.DataFrame, curves_of: Callable[[str], RocCurves | None]) -> None:
    """The per-finding table, then one finding's ROC (with its bootstrap band) and
    precision-recall curves from ``curves_of`` (cached per finding by the caller)."""
    shown = pd.DataFrame(
        {
            "finding": table["finding"],
            "n": table["n"].astype(int),
            "positives": table["positives"].astype(int),
            "prevalence": table["prevalence"].round(3),
            "AUC (95% CI)": [fmt_ci(a, b, c) for a, b, c in zip(table["auc"], table["auc_low"], table["auc_high"])],
            "sensitivity": [
                fmt_ci(a, b, c)
                for a, b, c in zip(table["sensitivity"], table["sensitivity_low"], table["sensitivity_high"])
            ],
            "specificity": [
                fmt_ci(a, b, c)
                for a, b, c in zip(table["specificity"], table["specificity_low"], table["specificity_high"])
            ],
            "PPV": [fmt_ci(a, b, c) for a, b, c in zip(table["ppv"], table["ppv_low"], table["ppv_high"])],
            "NPV": [fmt_ci(a, b, c) for a, b, c in zip(table["npv"], table["npv_low"], table["npv_high"])],
            "false-positive rate FP/(FP+TN)": table["false_positive_rate"].round(3),
            "wrong share of positive calls (1-PPV)": table["wrong_share_of_positive_calls"].round(3),
        }
    )
    st.dataframe(shown, hide_index=True, width="stretch", key="metrics_table", height=38 + 35 * len(shown))
    few = [f for f, pos in zip(table["finding"], table["positives"]) if pos < 10]
    if few:
        st.caption(f"Fewer than 10 positives (intervals wide, AUC unstable): {', '.join(few)}.")
    findings = list(table["finding"])
    both = [f for f, pos, n in zip(table["finding"], table["positives"], table["n"]) if 0 < pos < n]
    # open on a finding whose ROC exists (both classes present), never on an undefined one
    finding = st.selectbox("Finding", findings, index=findings.index(both[0]) if both else 0, key="an_finding")
    row = table.set_index("finding").loc[finding]
    c1, c2 = st.columns(2)
    curves = curves_of(finding)
    if curves is not None:
        fpr, tpr, grid, low, high = curves.fpr, curves.tpr, curves.band_fpr, curves.band_low, curves.band_high
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=grid, y=low, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=high,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(99,110,250,0.2)",
                name="95% band (bootstrap by patient)",
            )
        )
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"ROC (AUC {row['auc']:.3f})"))
        op_fpr = 1 - row["specificity"] if not pd.isna(row["specificity"]) else None
        fig.add_trace(
            go.Scatter(
                x=[op_fpr], y=[row["sensitivity"]], mode="markers", marker_size=12, name="current operating point"
            )
        )
        fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
        fig.update_layout(
            xaxis_title="1 − specificity",
            yaxis_title="sensitivity",
            height=420,
            title=f"{finding}: AUC {fmt_ci(row['auc'], row['auc_low'], row['auc_high'])}",
        )
        c1.plotly_chart(fig, key="roc_chart")
        pr = go.Figure(go.Scatter(x=curves.recall, y=curves.precision, mode="lines", name="precision-recall"))
        pr.add_trace(
            go.Scatter(
                x=[row["sensitivity"]], y=[row["ppv"]], mode="markers", marker_size=12, name="current operating point"
            )
        )
        pr.update_layout(
            xaxis_title="recall (sensitivity)",
            yaxis_title="precision (PPV)",
            height=420,
            title=f"{finding}: prevalence {row['prevalence']:.3f}",
        )
        c2.plotly_chart(pr, key="pr_chart")
    else:
        st.info(
            f"{finding}: only one class in the ground truth ({int(row['positives'])} positive, "
            f"{int(row['negatives'])} negative); ROC is undefined."
        )
    st.write(
        f"At the current thresholds: TP {int(row['tp'])}, FP {int(row['fp'])}, "
        f"TN {int(row['tn'])}, FN {int(row['fn'])}. "
        f"False-positive rate (share of true negatives flagged) {row['false_positive_rate']:.3f}; "
        f"share of the model's positive calls that are wrong (1 − PPV) "
        f"{row['wrong_share_of_positive_calls']:.3f}."
    )


def false_positive_tab(fps, table) -> None:
    """False positives by finding, the studies they fall on (a row opens the study) and how
    they spread over view, sex and age; ``table`` is core.cohort.false_positive_studies."""
    if fps.empty:
        st.write("No false positives in this selection.")
        return
    st.bar_chart(fps["label"].value_counts().rename("false positives"))
    st.subheader("False-positive studies")
    event = st.dataframe(
        table.reset_index()[
            ["id", "original_name", "false-positive findings", "view_position", "patient_sex", "age band"]
        ],
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="fp_table",
    )
    if event and event.selection and event.selection.rows:
        open_study(int(table.index[event.selection.rows[0]]))
    cols = st.columns(3)
    for col, (title, key) in zip(
        cols, [("View position", "view_position"), ("Sex", "patient_sex"), ("Age band", "age band")]
    ):
        col.caption(title)
        col.dataframe(table[key].fillna("unknown").value_counts().rename("studies"), width="stretch")
    st.subheader("Findings flagged together in false positives")
    st.dataframe(co_flagged_in_false_positives(fps), hide_index=True, width="stretch")


def operating_points(cohort, findings: list[str]) -> tuple[str, float, list]:
    """The threshold proposal table; returns (kind, target, points) for saving."""
    c1, c2 = st.columns(2)
    kind = c1.selectbox("Choose thresholds for", list(TARGET_KINDS), key="op_kind")
    target = c2.slider("Target", 0.5, 0.99, 0.80, 0.01, key="op_target", disabled=kind == "Youden")
    points = propose(cohort, findings, kind, target)
    table = pd.DataFrame([asdict(p) for p in points])
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="op_table",
        column_config={"threshold": st.column_config.NumberColumn(format="%.4f")},
    )
    return kind, target, points


def calibration(cohort, table) -> None:
    finding = st.selectbox("Finding", list(table["finding"]), key="cal_finding")
    y, s, _, _ = cohort.label(finding)
    ece, bins = metrics.expected_calibration_error(y.astype(float), s)
    fig = go.Figure(
        go.Scatter(
            x=bins["mean_predicted"],
            y=bins["fraction_positive"],
            mode="lines+markers",
            name="model",
            text=[f"n={c}" for c in bins["count"]],
        )
    )
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
    fig.update_layout(
        xaxis_title="mean predicted probability",
        yaxis_title="fraction positive",
        height=420,
        title=f"{finding}: expected calibration error {ece:.3f}",
    )
    st.plotly_chart(fig, key="calibration_chart")


def agreement(data) -> None:
    kappa = cohen_kappa_by_finding(data.vote_pos, data.vote_reviewer, data.vote_present, data.labels)
    if kappa.empty:
        st.write("No study has been read by two reviewers yet.")
    else:
        st.dataframe(kappa, hide_index=True, width="stretch")


def over_time(cohort, details: pd.DataFrame) -> None:
    """Studies per day and each finding's scores over time; ``details`` holds each study's
    upload time, in the cohort's order."""
    if details.empty:
        return
    days = pd.to_datetime(details["created_at"]).dt.floor("D")
    st.subheader("Studies per day")
    st.bar_chart(days.value_counts().sort_index().rename("studies"))
    st.subheader("Score distribution over time")
    finding = st.selectbox("Finding", list(cohort.labels), key="time_finding")
    fig = go.Figure(go.Box(x=days, y=cohort.probs[:, cohort.labels.index(finding)], name=finding))
    fig.update_layout(height=380, yaxis_title="probability")
    st.plotly_chart(fig, key="time_chart")
