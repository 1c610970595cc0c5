"""The Model page's closed loop: the registered versions, retraining (admins start and
cancel a job that a worker runs), a candidate's paired comparison with the current model,
the promotion gate, shadow runs, promotion and rollback."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.promotion import RULE
from dashboard.text import plain
from services import model_loop


def registry_section(engine, settings, user) -> None:
    st.subheader("Versions and retraining")
    st.caption("The model learns from the site's reads: " + RULE + ".")
    models = model_loop.versions(engine, settings)
    st.dataframe(pd.DataFrame(models), hide_index=True, width="stretch")
    job = model_loop.latest_job(engine)
    if job is not None:
        st.progress(min(1.0, job.progress), text=f"Retraining job {job.id}: {job.status} · {plain(job.message or '')}")
    if not user.is_admin:
        return
    c1, c2 = st.columns(2)
    if c1.button("Retrain on the site's reads", key="retrain_start"):
        started = model_loop.start_retraining(engine, user.username)
        st.success(f"Retraining job {started.id} is {started.status}; a worker runs it beside analysis.")
    if job is not None and job.status in ("queued", "running") and c2.button("Cancel retraining", key="retrain_cancel"):
        model_loop.cancel_retraining(engine, job.id, user.username)
        st.info(f"Job {job.id}: cancel requested; nothing half-written is kept.")
    candidates = [m["name"] for m in models if m["status"] in ("candidate", "shadow")]
    if candidates:
        _candidate(engine, user, st.selectbox("Candidate", candidates, key="candidate_pick"))
    retired = [m["name"] for m in models if m["status"] == "retired"]
    if retired:
        back = st.selectbox("Earlier version", retired, key="rollback_pick")
        if st.button("Roll back to it", key="rollback"):
            _act(lambda: model_loop.rollback(engine, user.username, back), f"{back} is current again.")


def _candidate(engine, user, name: str) -> None:
    report = model_loop.comparison(engine, name)
    _comparison_table(report.get("site_heldout") or {}, "site")
    _prospective(report)
    gate = report["gate"]
    if gate["passed"]:
        st.success("The candidate passes the promotion gate.")
    else:
        st.warning("The gate refuses it: " + plain("; ".join(gate["reasons"])))
    _shadow_controls(engine, user, name, report["status"])
    reason = st.text_input("Override reason (only to promote a candidate the gate refuses; audited)", key="override")
    if st.button("Promote", key="promote"):
        _act(lambda: model_loop.promote(engine, user.username, name, reason or None), f"{name} is now current.")


def _prospective(report: dict) -> None:
    """The shadow run's cohort, when there is one: never part of the gate, shown beside it."""
    prospective = report.get("prospective")
    if report["status"] == "shadow" and not prospective:
        st.info(f"Running in shadow on {report['shadow_studies']} new studies; compared once readers have read them.")
    if prospective:
        mean = prospective.get("mean_auc_findings")
        line = f"Shadow run: {prospective['studies']} studies read since it began"
        if mean:
            line += (
                f"; mean AUC {mean['mean_a']:.3f} -> {mean['mean_b']:.3f} "
                f"({mean['difference']:+.3f}, 95% CI {mean['ci_low']:+.3f} to {mean['ci_high']:+.3f})"
            )
        st.caption(line)
        _comparison_table(prospective, "prospective")


def _shadow_controls(engine, user, name: str, status: str) -> None:
    if status == "shadow":
        if st.button("End the shadow run", key="shadow_stop"):
            _act(lambda: model_loop.stop_shadow(engine, user.username), f"{name} no longer runs in shadow.", False)
    elif st.button("Run in shadow on new studies (never shown to readers)", key="shadow_start"):
        _act(lambda: model_loop.start_shadow(engine, user.username, name), f"{name} runs in shadow.", False)


def _comparison_table(site: dict, key: str) -> None:
    """Per finding: both AUCs, the difference with its 95% CI and DeLong's p; a chart of the differences."""
    rows = [{"finding": label, **values} for label, values in (site.get("per_label") or {}).items()]
    if rows:
        table = pd.DataFrame(rows)[["finding", "auc_a", "auc_b", "difference", "ci_low", "ci_high", "p_value"]]
        table.columns = ["finding", "current AUC", "candidate AUC", "difference", "95% CI low", "95% CI high", "p"]
        st.dataframe(table, hide_index=True, width="stretch")
        fig = go.Figure(
            go.Bar(
                x=table["difference"],
                y=table["finding"],
                orientation="h",
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": table["95% CI high"] - table["difference"],
                    "arrayminus": table["difference"] - table["95% CI low"],
                },
            )
        )
        fig.update_layout(height=40 + 26 * len(table), margin={"l": 10, "r": 10, "t": 10, "b": 10})
        st.plotly_chart(fig, width="stretch", key=f"compare_chart_{key}")
    elif key == "site":
        st.info("No finding has enough held-out site positives for a paired comparison yet.")


def _act(action, done: str, requeues: bool = True) -> None:
    try:
        action()
    except (PermissionError, ValueError) as exc:
        st.error(plain(exc))
    else:
        # the message names a model, and a model's name comes from its card file: plain text
        st.success(plain(done) + (" Unread studies are analysed again by it." if requeues else ""))
