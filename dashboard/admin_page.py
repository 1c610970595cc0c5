"""Admin: users, failed studies, reference labels, and the audit trail (browse, export)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.export import safe_csv
from sqlalchemy import select

from core.reference_labels import import_labels
from dashboard.auth import require_user
from dashboard.state import settings_and_engine
from dashboard.text import plain
from db import audit
from db.queue import requeue
from db.schema import AuditEvent, Study, StudyStatus
from db.session import run_write
from db.users import ROLES, create_user, list_users, set_active


def render() -> None:
    user = require_user(admin=True)
    settings, engine = settings_and_engine()
    st.title("Administration")
    tabs = st.tabs(["Users", "Failed studies", "Reference labels", "Audit trail"])
    with tabs[0]:
        _users(engine, user)
    with tabs[1]:
        _failed(engine, user)
    with tabs[2]:
        _reference(engine, user)
    with tabs[3]:
        _audit(engine, user)


def _users(engine, user) -> None:
    st.dataframe(pd.DataFrame(list_users(engine)), hide_index=True, width="stretch")
    with st.form("new_user", clear_on_submit=True):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("User name", max_chars=80)
        password = c2.text_input("Initial password", type="password")
        role = c3.selectbox("Role", ROLES)
        if st.form_submit_button("Create user"):
            try:
                create_user(engine, name, password, role, actor=user.username)
                st.success(f"Created {role} {plain(name)}.")
            except ValueError as exc:
                st.error(plain(exc))
    names = [u["username"] for u in list_users(engine) if u["username"] != user.username]
    if names:
        c1, c2 = st.columns(2)
        who = c1.selectbox("Account", names, key="admin_who")
        action = c2.radio("Action", ["disable", "enable"], horizontal=True, key="admin_action")
        if st.button("Apply", key="admin_apply"):
            set_active(engine, who, action == "enable", actor=user.username)
            st.success(f"{plain(who)}: {action}d. A disabled user's session ends at their next action.")


def _failed(engine, user) -> None:
    with engine.connect() as conn:
        rows = conn.execute(select(Study.id, Study.original_name, Study.attempts, Study.error)
                            .where(Study.status == StudyStatus.FAILED).order_by(Study.id)).mappings().all()
    if not rows:
        st.write("No failed study.")
        return
    df = pd.DataFrame(rows)
    st.dataframe(df, hide_index=True, width="stretch")
    sid = st.selectbox("Study", df["id"], key="requeue_id")
    if st.button("Queue again", key="requeue"):
        requeue(engine, int(sid), user.username)
        st.success(f"Study {sid} queued again.")


def _reference(engine, user) -> None:
    st.write("Import ground truth in NIH format (`Image Index`, `Finding Labels`, optional `Patient ID`); "
             "rows are matched to studies by the uploaded file name.")
    upload = st.file_uploader("Label CSV (may be gzip-compressed)", type=["csv", "gz"], key="ref_csv")
    if upload is not None and st.button("Import", key="ref_import"):
        suffix = ".csv.gz" if upload.name.endswith(".gz") else ".csv"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"labels{suffix}"  # our name, not the user's
            path.write_bytes(upload.getvalue())
            try:
                result = import_labels(engine, path, actor=user.username)
            except ValueError as exc:
                st.error(f"Not imported: {plain(exc)}")
                return
        st.success(f"{result['added']} added, {result['updated']} updated; "
                   f"{result['matched_studies']} studies matched.")


def _audit(engine, user) -> None:
    c1, c2 = st.columns(2)
    action = c1.text_input("Action contains", key="audit_action", max_chars=40)
    limit = c2.number_input("Rows", 50, 10000, 500, key="audit_limit")
    query = select(AuditEvent.id, AuditEvent.at, AuditEvent.actor, AuditEvent.action, AuditEvent.study_id,
                   AuditEvent.detail).order_by(AuditEvent.id.desc()).limit(int(limit))
    if action:
        query = query.where(AuditEvent.action.contains(action, autoescape=True))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(query).mappings().all())
    if df.empty:
        st.write("No events.")
        return
    df["detail"] = df["detail"].astype(str)
    st.dataframe(df, hide_index=True, width="stretch")

    def log_export() -> None:
        run_write(engine, lambda s: audit.record(s, "export", user.username, None, what="audit_log"))

    st.download_button("Export audit trail (CSV)", safe_csv(df), "audit.csv", "text/csv",
                       on_click=log_export, key="dl_audit")
