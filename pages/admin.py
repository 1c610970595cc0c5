"""Administration: users, failed studies, the PACS outbox, reference labels, and the audit trail."""

import tempfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.auth import require_user
from dashboard.state import settings_and_engine
from dashboard.text import plain
from services.accounts import ROLES, create_user, list_users, reset_password, set_active, set_role
from services.exports import audit_csv, audit_frame, record_export
from services.operations import audit_actions, audit_events, failed_studies, requeue
from services.pacs.outbox import failing_results, resend_results
from services.reference_labels import import_labels


def users_tab(engine, admin) -> None:
    with st.form("new_user", clear_on_submit=True):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("User name", max_chars=80)
        password = c2.text_input("Initial password", type="password")
        role = c3.selectbox("Role", ROLES)
        if st.form_submit_button("Create user"):
            try:
                create_user(engine, name, password, role, actor=admin.username)
                st.success(f"Created {role} {plain(name)}.")
            except ValueError as exc:
                st.error(plain(exc))
    others = [u.username for u in list_users(engine) if u.username != admin.username]
    if others:
        c1, c2, c3 = st.columns(3)
        who = c1.selectbox("Account", others, key="admin_who")
        action = c2.selectbox(
            "Action", ["disable", "enable", "make reviewer", "make admin", "reset password"], key="admin_action"
        )
        new_password = c3.text_input(
            "New password", type="password", key="admin_new_password", disabled=action != "reset password"
        )
        if st.button("Apply", key="admin_apply"):
            try:
                if action in ("disable", "enable"):
                    set_active(engine, who, action == "enable", actor=admin.username)
                    st.success(f"{plain(who)}: {action}d. A disabled user's session ends at their next action.")
                elif action.startswith("make "):
                    set_role(engine, who, action.removeprefix("make "), actor=admin.username)
                    st.success(f"{plain(who)} is now {action.removeprefix('make ')}.")
                else:
                    reset_password(engine, who, new_password, actor=admin.username)
                    st.success(f"{plain(who)}: password reset. Tell them through another channel.")
            except ValueError as exc:
                st.error(plain(exc))
    # read after any change above, so the table is current
    st.dataframe(pd.DataFrame([asdict(u) for u in list_users(engine)]), hide_index=True, width="stretch")


def failed_tab(engine, admin) -> None:
    failed = failed_studies(engine)
    if not failed:
        st.write("No failed study.")
        return
    st.dataframe(pd.DataFrame([asdict(f) for f in failed]), hide_index=True, width="stretch")
    sid = st.selectbox("Study", [f.id for f in failed], key="requeue_id")
    if st.button("Queue again", key="requeue"):
        requeue(engine, int(sid), admin.username)
        st.success(f"Study {sid} queued again.")


def outbox_tab(engine, admin) -> None:
    """Results for the PACS that failed: retried every 10 minutes for 24 hours, then failed
    for good; resent here one by one or all at once (``cxr outbox`` does the same)."""
    rows = failing_results(engine)
    if not rows:
        st.write("Every result has reached the PACS (or is on its first try).")
        return
    st.caption("Retried at a capped rate (every 10 minutes at most) for 24 hours after queueing, then failed.")
    st.dataframe(pd.DataFrame([r.as_dict() for r in rows]), hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    chosen = c1.multiselect("Results", [r.id for r in rows], key="outbox_ids")
    if c1.button("Resend selected", key="outbox_resend", disabled=not chosen):
        st.success(f"{resend_results(engine, [int(i) for i in chosen], admin.username)} result(s) queued again.")
    if c2.button("Resend all", key="outbox_resend_all"):
        st.success(f"{resend_results(engine, None, admin.username)} result(s) queued again.")


def reference_tab(engine, admin) -> None:
    st.write(
        "Import ground truth in NIH format (`Image Index`, `Finding Labels`, optional `Patient ID`); "
        "rows are matched to studies by the uploaded file name."
    )
    upload = st.file_uploader("Label CSV (may be gzip-compressed)", type=["csv", "gz"], key="ref_csv")
    if upload is not None and st.button("Import", key="ref_import"):
        suffix = ".csv.gz" if upload.name.endswith(".gz") else ".csv"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"labels{suffix}"  # our name on disk, never the user's
            path.write_bytes(upload.getvalue())
            try:
                result = import_labels(engine, path, actor=admin.username, source_name=upload.name)
            except ValueError as exc:
                st.error(f"Not imported: {plain(exc)}")
                return
        st.success(f"{result.added} added, {result.updated} updated; {result.matched_studies} studies matched.")


def audit_tab(engine, admin) -> None:
    c1, c2 = st.columns(2)
    action = c1.selectbox("Action", ["(all)", *audit_actions(engine)], key="audit_action")
    limit = c2.number_input("Rows", 50, 10000, 500, key="audit_limit")
    rows = audit_events(engine, None if action == "(all)" else action, int(limit))
    if not rows:
        st.write("No events.")
        return
    st.dataframe(audit_frame(rows), hide_index=True, width="stretch")
    st.download_button(
        "Export audit trail (CSV)",
        audit_csv(rows),
        "audit.csv",
        "text/csv",
        on_click=record_export,
        args=(engine, admin.username, "audit_log"),
        key="dl_audit",
    )


admin = require_user(admin=True)
settings, engine = settings_and_engine()
st.title("Administration")
users, failed, outbox, reference, trail = st.tabs(
    ["Users", "Failed studies", "PACS outbox", "Reference labels", "Audit trail"]
)
with users:
    users_tab(engine, admin)
with failed:
    failed_tab(engine, admin)
with outbox:
    outbox_tab(engine, admin)
with reference:
    reference_tab(engine, admin)
with trail:
    audit_tab(engine, admin)
