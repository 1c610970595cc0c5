"""The outbound queue: DICOM result objects waiting for their C-STORE to the PACS, with
retries and back-off. Every send and every failure is in the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from db import audit
from db.schema import Outbound, utcnow
from db.session import affected, run_write


class OutboundStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPERSEDED = "superseded"


PENDING, SENT, FAILED, SUPERSEDED = (
    OutboundStatus.PENDING,
    OutboundStatus.SENT,
    OutboundStatus.FAILED,
    OutboundStatus.SUPERSEDED,
)
RETRY_WINDOW = timedelta(hours=24)  # how long a result is retried before it is failed for good


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
    created_at: datetime
    retry_until: datetime | None
    next_attempt_at: datetime


def enqueue(session: Session, items: list[NewOutbound], actor: str) -> None:
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
        session.add(
            Outbound(
                **item.__dict__,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                retry_until=now + RETRY_WINDOW,
            )
        )
    audit.record(session, "results_prepared", actor, items[0].study_id, objects=[i.kind for i in items])


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
    engine: Engine, item: OutboundItem, error: str, actor: str, backoff: timedelta, now: datetime | None = None
) -> str:
    """Record a failed send: retried after ``backoff`` until its retry window (24 h from
    queueing or the last resend) has passed, then failed for good (listed for admins)."""
    now = now or utcnow()
    attempts = item.attempts + 1
    deadline = item.retry_until or (item.created_at + RETRY_WINDOW)
    status = FAILED if now + backoff > deadline else PENDING

    def work(session: Session) -> None:
        session.execute(
            update(Outbound)
            .where(Outbound.id == item.id)
            .values(status=status, attempts=attempts, last_error=error[:500], next_attempt_at=now + backoff)
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


def _not_delivered():
    """Failed for good, or pending a retry after a failure."""
    return (Outbound.status == FAILED) | ((Outbound.status == PENDING) & (Outbound.attempts > 0))


def failing(engine: Engine, limit: int = 500) -> list[OutboundItem]:
    """Results not delivered that have failed at least once: failed for good, or pending a
    retry after a failure (what the outbox shows admins and what Home warns about)."""
    return _items(engine, _not_delivered(), limit=limit)


def failing_count(engine: Engine) -> int:
    """How many results are not being delivered (one count, for Home's warning)."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Outbound).where(_not_delivered())).scalar_one()


def resend(engine: Engine, ids: list[int] | None, actor: str) -> int:
    """Queue failed (or retrying) results again now, with a new 24 h retry window; ``None``:
    every one of them. Audited; returns how many."""
    now = utcnow()

    def work(session: Session) -> int:
        query = update(Outbound).where(
            (Outbound.status == FAILED) | ((Outbound.status == PENDING) & (Outbound.attempts > 0))
        )
        if ids is not None:
            query = query.where(Outbound.id.in_(ids))
        count = affected(
            session.execute(query.values(status=PENDING, next_attempt_at=now, retry_until=now + RETRY_WINDOW))
        )
        audit.record(session, "results_resent", actor, None, ids=ids if ids is not None else "all", count=count)
        return count

    return run_write(engine, work)
