"""Append-only audit events. Details never carry patient identifiers or passwords."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from db.schema import AuditEvent
from db.session import run_write

FORBIDDEN_KEYS = {"password", "patient_name", "patient_id", "PatientName", "PatientID", "PatientBirthDate"}


def record(
    session: Session, action: str, actor: str | None = None, study_id: int | None = None, **detail: Any
) -> AuditEvent:
    """Add an event to the caller's transaction so it commits (or not) with the change."""
    event = AuditEvent(action=action, actor=_actor(actor), study_id=study_id, detail=_checked(detail))
    session.add(event)
    return event


def record_many(
    session: Session, action: str, actor: str | None, items: list[tuple[int | None, dict[str, Any]]]
) -> None:
    """One event per (study id, detail), inserted together (bulk operations)."""
    rows = [{"action": action, "actor": _actor(actor), "study_id": sid, "detail": _checked(d)} for sid, d in items]
    session.execute(insert(AuditEvent), rows)


def _checked(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The detail as stored, refused when it names a patient identifier or a password."""
    bad = FORBIDDEN_KEYS.intersection(detail)
    if bad:
        raise ValueError(f"audit detail must not contain {sorted(bad)}")
    return detail or None


def _actor(actor: str | None) -> str | None:
    return None if actor is None else str(actor)[:80]  # the column's size, also on SQLite


def record_now(
    engine: Engine, action: str, actor: str | None = None, study_id: int | None = None, **detail: Any
) -> None:
    """An event on its own (an export, a download): its own write transaction."""
    run_write(engine, lambda session: record(session, action, actor, study_id, **detail))


def last_detail(session: Session, action: str) -> dict[str, Any] | None:
    """The detail of the most recent event of this action (in the caller's transaction)."""
    return session.execute(
        select(AuditEvent.detail).where(AuditEvent.action == action).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str | None
    action: str
    study_id: int | None
    detail: dict[str, Any] | None


def events(engine: Engine, action: str | None = None, limit: int = 500) -> list[AuditRow]:
    """The latest events, newest first; ``action`` is an exact action name."""
    query = (
        select(
            AuditEvent.id, AuditEvent.at, AuditEvent.actor, AuditEvent.action, AuditEvent.study_id, AuditEvent.detail
        )
        .order_by(AuditEvent.id.desc())
        .limit(int(limit))
    )
    if action:
        query = query.where(AuditEvent.action == action)
    with engine.connect() as conn:
        return [AuditRow(*row) for row in conn.execute(query).all()]


def action_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(AuditEvent.action).distinct()).scalars())
