"""Append-only audit events. Details never carry patient identifiers or passwords."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db.schema import AuditEvent

FORBIDDEN_KEYS = {"password", "patient_name", "patient_id", "PatientName", "PatientID", "PatientBirthDate"}


def record(session: Session, action: str, actor: str | None = None, study_id: int | None = None,
           **detail: Any) -> AuditEvent:
    """Add an event to the caller's transaction so it commits (or not) with the change."""
    bad = FORBIDDEN_KEYS.intersection(detail)
    if bad:
        raise ValueError(f"audit detail must not contain {sorted(bad)}")
    actor = None if actor is None else str(actor)[:80]  # the column's size, also on SQLite
    event = AuditEvent(action=action, actor=actor, study_id=study_id, detail=detail or None)
    session.add(event)
    return event
