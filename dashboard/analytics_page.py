"""Analytics: per-finding ROC and operating points, false-positive analysis, calibration,
agreement, volume over time, and CSV exports. Statistics come from core.cohort/metrics."""
from __future__ import annotations

from datetime import datetime, time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from sqlalchemy import func, select

from core import metrics
from core.export import safe_csv
from core.cohort import (
    age_band,
    co_flagged_in_false_positives,
    cohen_kappa_by_finding,
    default_boot_count,
    false_positives,
    finding_table,
)
from core.labels import LABELS
from dashboard.auth import require_user
from dashboard.state import DISCLAIMER, model_card_or_error, settings_and_engine
from db import audit
from db.analytics import CohortFilter, load_cohort, model_versions
from db.reviews import reviewers
from db.schema import ReferenceLabel, Study, ThresholdSet, Verdict, VerdictSet
from db.session import run_write


def _data_stamp(engine) -> tuple:
    """Changes whenever anything the page reads changes: the cache key."""
    with engine.connect() as conn:
        rows = (
            conn.execute(select(func.count(), func.max(VerdictSet.updated_at)).select_from(VerdictSet)).one(),
            conn.execute(select(func.count(), func.max(Study.processed_at)).where(Study.status == "done")).one(),
            conn.execute(select(func.count(), func.max(ReferenceLabel.id)).select_from(ReferenceLabel)).one(),
        )
    return tuple(str(v) for row in rows for v in row)


@st.cache_data(max_entries=16, show_spinner="Computing cohort metrics…")
def compute(_engine, stamp: tuple, flt: CohortFilter, source: str, rule: str, rule_reviewer: int | None):
    """Everything the page shows, cached until the data (stamp) or the selection changes."""
    data = load_cohort(_engine, flt, with_reference=source == "reference")
    cohort = data.cohort(source, rule, rule_reviewer)
    n_known = int((~np.isnan(cohort.truth)).any(axis=1).sum())
    n_boot = default_boot_count(n_known)
    return data, cohort, finding_table(cohort, n_boot), false_positives(cohort), n_boot


def render() -> None:
    user = require_user()
    settings, engine = settings_and_engine()
    st.title("Cohort analytics")
    st.caption(DISCLAIMER)
    flt, source, rule, rule_reviewer = _controls(engine)
    data, cohort, table, fps, n_boot = compute(engine, _data_stamp(engine), flt, source, rule, rule_reviewer)
    if table.empty:
        st.info("No study in this selection has ground truth yet: review studies or import reference labels.")
        return
    n_known = int((~np.isnan(cohort.truth)).any(axis=1).sum())
    st.caption(f"{n_known} studies with ground truth; AUC 95% CIs from {n_boot} bootstrap resamples by patient "
               "where known, else by study.")
    tabs = st.tabs(["Per finding", "False positives", "Operating points", "Calibration", "Agreement",
                    "Over time", "Export"])
    with tabs[0]:
        _per_finding(cohort, table)
    with tabs[1]:
        _false_positives(cohort, fps)
    with tabs[2]:
        _operating_points(engine, settings, user, cohort, table)
    with tabs[3]:
        _calibration(cohort, table)
    with tabs[4]:
        _agreement(data)
    with tabs[5]:
        _over_time(cohort)
    with tabs[6]:
        _exports(engine, user, table, flt)


def _controls(engine):
    people = reviewers(engine)
    with st.expander("Selection", expanded=True):
        c1, c2, c3, c4 = st.columns(4)
        dates = c1.date_input("Uploaded between", value=(), key="an_dates")
        versions = model_versions(engine)
        version = c2.selectbox("Model version", ["(all)"] + versions, key="an_version")
        reviewer = c3.selectbox("Reviewer", ["(all)"] + list(people.values()), key="an_reviewer")
        view = c4.selectbox("View position", ["(all)", "PA", "AP", "LL"], key="an_view")
        c5, c6, c7 = st.columns(3)
        source = c5.radio("Ground truth", ["verdicts", "reference"], key="an_source", horizontal=True,
                          format_func={"verdicts": "reviewers' verdicts", "reference": "imported reference labels"}.get)
        rule = c6.selectbox("When reviewers disagree", ["majority", "adjudicator", "reviewer"], key="an_rule",
                            format_func={"majority": "majority (ties: adjudicator, else excluded)",
                                         "adjudicator": "an adjudicator (admin) decides",
                                         "reviewer": "one chosen reviewer"}.get)
        chosen = c7.selectbox("Chosen reviewer", list(people.values()) or ["(none)"], key="an_rule_reviewer")
    date_from = date_to = None
    if isinstance(dates, (tuple, list)) and len(dates) == 2:
        date_from, date_to = datetime.combine(dates[0], time.min), datetime.combine(dates[1], time.max)
    rid = next((i for i, n in people.items() if n == reviewer), None)
    chosen_id = next((i for i, n in people.items() if n == chosen), None)
    flt = CohortFilter(date_from, date_to, None if version == "(all)" else version, rid,
                       None if view == "(all)" else view)
    return flt, source, rule, chosen_id if rule == "reviewer" else None


def _fmt_ci(v, lo, hi) -> str:
    return "n/a" if pd.isna(v) else f"{v:.3f} ({lo:.3f}–{hi:.3f})"


def _per_finding(cohort, table) -> None:
    shown = pd.DataFrame({
        "finding": table["finding"], "n": table["n"], "positives": table["positives"],
        "prevalence": table["prevalence"].round(3),
        "AUC (95% CI)": [_fmt_ci(a, b, c) for a, b, c in zip(table["auc"], table["auc_low"], table["auc_high"])],
        "sensitivity": [_fmt_ci(a, b, c) for a, b, c in zip(table["sensitivity"], table["sensitivity_low"], table["sensitivity_high"])],
        "specificity": [_fmt_ci(a, b, c) for a, b, c in zip(table["specificity"], table["specificity_low"], table["specificity_high"])],
        "PPV": [_fmt_ci(a, b, c) for a, b, c in zip(table["ppv"], table["ppv_low"], table["ppv_high"])],
        "NPV": [_fmt_ci(a, b, c) for a, b, c in zip(table["npv"], table["npv_low"], table["npv_high"])],
        "false-positive rate FP/(FP+TN)": table["false_positive_rate"].round(3),
        "wrong share of positive calls (1-PPV)": table["wrong_share_of_positive_calls"].round(3),
    })
    st.dataframe(shown, hide_index=True, width="stretch", key="metrics_table")
    finding = st.selectbox("Finding", list(table["finding"]), key="an_finding")
    y, s, _, _ = cohort.label(finding)
    row = table.set_index("finding").loc[finding]
    c1, c2 = st.columns(2)
    if y.any() and (~y).any():
        fpr, tpr, _ = metrics.roc_points(y, s)
        fig = go.Figure(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"ROC (AUC {row['auc']:.3f})"))
        op_fpr = 1 - row["specificity"] if not pd.isna(row["specificity"]) else None
        fig.add_trace(go.Scatter(x=[op_fpr], y=[row["sensitivity"]], mode="markers", marker_size=12,
                                 name="current operating point"))
        fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
        fig.update_layout(xaxis_title="1 − specificity", yaxis_title="sensitivity", height=420,
                          title=f"{finding}: AUC {_fmt_ci(row['auc'], row['auc_low'], row['auc_high'])}")
        c1.plotly_chart(fig, key="roc_chart")
        prec, rec, _ = metrics.pr_points(y, s)
        pr = go.Figure(go.Scatter(x=rec, y=prec, mode="lines", name="precision-recall"))
        pr.add_trace(go.Scatter(x=[row["sensitivity"]], y=[row["ppv"]], mode="markers", marker_size=12,
                                name="current operating point"))
        pr.update_layout(xaxis_title="recall (sensitivity)", yaxis_title="precision (PPV)", height=420,
                         title=f"{finding}: prevalence {row['prevalence']:.3f}")
        c2.plotly_chart(pr, key="pr_chart")
    else:
        st.info(f"{finding}: only one class in the ground truth ({int(y.sum())} positive, {int((~y).sum())} "
                "negative); ROC is undefined.")
    st.write(f"At the current thresholds: TP {row['tp']}, FP {row['fp']}, TN {row['tn']}, FN {row['fn']}. "
             f"False-positive rate (share of true negatives flagged) {row['false_positive_rate']:.3f}; "
             f"share of the model's positive calls that are wrong (1 − PPV) "
             f"{row['wrong_share_of_positive_calls']:.3f}.")


def _false_positives(cohort, fps) -> None:
    if fps.empty:
        st.write("No false positives in this selection.")
        return
    st.bar_chart(fps["label"].value_counts().rename("false positives"))
    studies = cohort.meta.set_index("id")
    lst = fps.groupby("study_id")["label"].apply(lambda x: ", ".join(sorted(x))).rename("false-positive findings")
    table = studies.loc[studies.index.intersection(lst.index)].join(lst)
    table["age band"] = table["patient_age"].map(age_band)
    st.subheader("False-positive studies")
    event = st.dataframe(table.reset_index()[["id", "original_name", "false-positive findings", "view_position",
                                              "patient_sex", "age band"]],
                         hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="fp_table")
    if event and event.selection and event.selection.rows:
        st.session_state["study_id"] = int(table.index[event.selection.rows[0]])
        st.switch_page("pages/review.py")
    cols = st.columns(3)
    for col, (title, key) in zip(cols, [("View position", "view_position"), ("Sex", "patient_sex"),
                                        ("Age band", "age band")]):
        col.caption(title)
        col.dataframe(table[key].fillna("unknown").value_counts().rename("studies"), width="stretch")
    st.subheader("Findings flagged together in false positives")
    st.dataframe(co_flagged_in_false_positives(fps), hide_index=True, width="stretch")


def _operating_points(engine, settings, user, cohort, table) -> None:
    c1, c2 = st.columns(2)
    target_kind = c1.selectbox("Choose thresholds for", ["sensitivity", "specificity", "Youden"], key="op_kind")
    target = c2.slider("Target", 0.5, 0.99, 0.80, 0.01, key="op_target", disabled=target_kind == "Youden")
    rows, proposal = [], {}
    for finding in table["finding"]:
        y, s, _, _ = cohort.label(finding)
        if target_kind == "sensitivity":
            t = metrics.threshold_for_sensitivity(y, s, target)
        elif target_kind == "specificity":
            t = metrics.threshold_for_specificity(y, s, target)
        else:
            t = metrics.threshold_youden(y, s)
        if t is None:
            rows.append({"finding": finding, "threshold": None})
            continue
        proposal[finding] = float(t)
        conf = metrics.confusion_at(y, s, t)
        rows.append({"finding": finding, "threshold": round(t, 4), "sensitivity": conf.sensitivity().value,
                     "specificity": conf.specificity().value, "PPV": conf.ppv().value, "NPV": conf.npv().value,
                     "false-positive rate": conf.false_positive_rate().value,
                     "wrong share of positive calls": conf.false_discovery_rate().value})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="op_table")
    if not user.is_admin:
        st.caption("Only an administrator can save a threshold set.")
        return
    card = model_card_or_error(settings)
    if card is None:
        return
    if st.button("Save as a new threshold version for new predictions", key="op_save"):
        full = dict(card.thresholds)
        full.update(proposal)
        version = save_threshold_set(engine, card.version, full, f"{target_kind} {target:.2f} on reviewed cohort",
                                     user)
        st.success(f"Saved threshold set {version}; predictions made before keep their own thresholds.")


def save_threshold_set(engine, model_version: str, thresholds: dict[str, float], method: str, user) -> str:
    import hashlib
    import json

    version = hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()[:12]

    def work(session) -> str:
        session.query(ThresholdSet).filter(ThresholdSet.model_version == model_version).update({"active": False})
        existing = session.execute(select(ThresholdSet).where(ThresholdSet.version == version)).scalar_one_or_none()
        if existing is None:
            session.add(ThresholdSet(version=version, model_version=model_version, thresholds=thresholds,
                                     method=method, active=True, created_by=user.id))
        else:
            existing.active = True
        audit.record(session, "thresholds_changed", user.username, None, version=version,
                     model_version=model_version, method=method, thresholds=thresholds)
        return version

    return run_write(engine, work)


def _calibration(cohort, table) -> None:
    finding = st.selectbox("Finding", list(table["finding"]), key="cal_finding")
    y, s, _, _ = cohort.label(finding)
    ece, bins = metrics.expected_calibration_error(y.astype(float), s)
    fig = go.Figure(go.Scatter(x=bins["mean_predicted"], y=bins["fraction_positive"], mode="lines+markers",
                               name="model", text=[f"n={c}" for c in bins["count"]]))
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
    fig.update_layout(xaxis_title="mean predicted probability", yaxis_title="fraction positive", height=420,
                      title=f"{finding}: expected calibration error {ece:.3f}")
    st.plotly_chart(fig, key="calibration_chart")


def _agreement(data) -> None:
    kappa = cohen_kappa_by_finding(data.vote_pos, data.vote_reviewer, data.vote_present)
    if kappa.empty:
        st.write("No study has been read by two reviewers yet.")
    else:
        st.dataframe(kappa, hide_index=True, width="stretch")


def _over_time(cohort) -> None:
    if cohort.meta.empty:
        return
    days = pd.to_datetime(cohort.meta["created_at"]).dt.floor("D")
    st.subheader("Studies per day")
    st.bar_chart(days.value_counts().sort_index().rename("studies"))
    st.subheader("Score distribution over time")
    finding = st.selectbox("Finding", list(LABELS), key="time_finding")
    fig = go.Figure(go.Box(x=days, y=cohort.probs[:, LABELS.index(finding)], name=finding))
    fig.update_layout(height=380, yaxis_title="probability")
    st.plotly_chart(fig, key="time_chart")


def _exports(engine, user, table, flt) -> None:
    if not user.is_admin:
        st.caption("Exports are for administrators.")
        return

    def log_export(what: str) -> None:
        run_write(engine, lambda s: audit.record(s, "export", user.username, None, what=what))

    st.download_button("Metrics table (CSV)", safe_csv(table), "metrics.csv", "text/csv",
                       on_click=log_export, args=("metrics",), key="dl_metrics")
    if st.button("Prepare the verdicts export", key="prep_verdicts"):
        st.session_state["verdicts_csv"] = verdicts_csv(engine, flt)
    if "verdicts_csv" in st.session_state:
        st.download_button("Verdicts (CSV)", st.session_state["verdicts_csv"], "verdicts.csv", "text/csv",
                           on_click=log_export, args=("verdicts",), key="dl_verdicts")


def verdicts_csv(engine, flt) -> str:
    """Every verdict row in the selection, with who and when (built only on request)."""
    from sqlalchemy import and_

    from db.analytics import _conditions
    from db.schema import User

    query = (select(Verdict.study_id, Study.original_name, Verdict.label, User.username.label("reviewer"),
                    Verdict.flagged, Verdict.verdict, Verdict.present, Verdict.model_version, Verdict.created_at,
                    Verdict.updated_at)
             .join(Study, Study.id == Verdict.study_id).join(User, User.id == Verdict.reviewer_id)
             .where(and_(*_conditions(flt))).order_by(Verdict.study_id, Verdict.reviewer_id, Verdict.label))
    if flt.reviewer_id is not None:
        query = query.where(Verdict.reviewer_id == flt.reviewer_id)
    with engine.connect() as conn:
        return safe_csv(pd.DataFrame(conn.execute(query).mappings().all()))
