"""Exports: CSV files that are safe to open in a spreadsheet, each one audited."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import Engine

from core.export import safe_csv
from db import audit
from db.analytics import CohortFilter, verdict_rows


def verdicts_csv(engine: Engine, flt: CohortFilter) -> str:
    """Every verdict row in the selection, with who and when (built only on request)."""
    return safe_csv(verdict_rows(engine, flt))


def audit_frame(rows: list[audit.AuditRow]) -> pd.DataFrame:
    """Audit rows as a table whose detail column is JSON text (what an export carries)."""
    frame = pd.DataFrame([r.__dict__ for r in rows], columns=["id", "at", "actor", "action", "study_id", "detail"])
    frame["detail"] = frame["detail"].map(lambda d: json.dumps(d, sort_keys=True, default=str) if d else "")
    return frame


def audit_csv(rows: list[audit.AuditRow]) -> str:
    return safe_csv(audit_frame(rows))


def record_export(engine: Engine, actor: str, what: str) -> None:
    """Who exported what, when: called as the download starts."""
    audit.record_now(engine, "export", actor, None, what=what)
