"""The outbound queue: DICOM result objects waiting for their C-STORE to the PACS, with
retries and back-off. Every send and every failure is in the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from db import audit
from db.schema import Outbound, utcnow
from db.session import run_write

PENDING, SENT, FAILED, SUPERSEDED = "pending", "sent", "failed", "superseded"


@dataclass(frozen=True)
class NewOutbound:
    study_id: int
    kind: str  # "sr" or "overlay"
    sop_instance_uid: str
    sop_class_uid: str
    path: str  # relative to the data folder
    destination: str  # AE@host:port


@dataclass(frozen=True)
class OutboundItem:
    id: int
    study_id: int
    kind: str
    sop_instance_uid: str
    sop_class_uid: str
    path: str
    destination: str
    status: str
    attempts: int
    last_error: str | None


def enqueue(session: Session, items: list[NewOutbound]) -> None:
    """Queue a study's new result objects; objects of its earlier analysis not yet sent are
    superseded (the PACS gets the current results, not both)."""
    if not items:
        return
    session.execute(
        update(Outbound)
        .where(Outbound.study_id == items[0].study_id, Outbound.status == PENDING)
        .values(status=SUPERSEDED)
    )
    now = utcnow()
    for item in items:
        session.add(Outbound(**item.__dict__, status=PENDING, attempts=0, next_attempt_at=now, created_at=now))
    audit.record(session, "results_prepared", "worker", items[0].study_id, objects=[i.kind for i in items])


def _items(engine: Engine, *conditions, limit: int | None = None) -> list[OutboundItem]:
    fields = [getattr(Outbound, name) for name in OutboundItem.__dataclass_fields__]
    query = select(*fields).where(*conditions).order_by(Outbound.id)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [OutboundItem(*row) for row in conn.execute(query).all()]


def due(engine: Engine, limit: int = 20, now: datetime | None = None) -> list[OutboundItem]:
    return _items(engine, Outbound.status == PENDING, Outbound.next_attempt_at <= (now or utcnow()), limit=limit)


def for_study(engine: Engine, study_id: int) -> list[OutboundItem]:
    return _items(engine, Outbound.study_id == study_id)


def mark_sent(engine: Engine, item: OutboundItem, actor: str) -> None:
    def work(session: Session) -> None:
        session.execute(
            update(Outbound)
            .where(Outbound.id == item.id)
            .values(status=SENT, attempts=Outbound.attempts + 1, sent_at=utcnow(), last_error=None)
        )
        audit.record(
            session,
            "result_sent",
            actor,
            item.study_id,
            kind=item.kind,
            sop_instance_uid=item.sop_instance_uid,
            destination=item.destination,
        )

    run_write(engine, work)


def mark_failed_attempt(
    engine: Engine, item: OutboundItem, error: str, actor: str, max_attempts: int, backoff: timedelta
) -> str:
    """Record a failed send: retried after ``backoff`` until ``max_attempts``, then failed."""
    attempts = item.attempts + 1
    status = FAILED if attempts >= max_attempts else PENDING

    def work(session: Session) -> None:
        session.execute(
            update(Outbound)
            .where(Outbound.id == item.id)
            .values(status=status, attempts=attempts, last_error=error[:500], next_attempt_at=utcnow() + backoff)
        )
        audit.record(
            session,
            "result_send_failed",
            actor,
            item.study_id,
            kind=item.kind,
            attempt=attempts,
            error=error[:300],
            destination=item.destination,
            gave_up=status == FAILED,
        )

    run_write(engine, work)
    return status
