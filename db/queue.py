"""The study queue: atomic claims with leases, fenced completion, bounded retries.

A worker claims studies by setting ``lease_owner`` and ``lease_expires_at`` in one
write transaction. A worker that dies (even by SIGKILL) simply stops renewing; once its
lease expires another worker may claim the study. Completion is fenced on the lease
owner, so a late result from a worker that lost its lease is discarded, and a study is
never written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from db import audit
from db.schema import Study, StudyStatus, Verdict, utcnow
from db.session import affected, run_write, skipping_locked


@dataclass(frozen=True)
class ClaimedStudy:
    id: int
    stored_path: str
    original_name: str
    attempts: int
    created_at: datetime


def _claimable(now: datetime):
    """Queued and ready (its instances have stopped arriving), or held by a lost worker."""
    return or_(
        and_(Study.status == StudyStatus.QUEUED, or_(Study.ready_at.is_(None), Study.ready_at <= now)),
        and_(Study.status == StudyStatus.PROCESSING, Study.lease_expires_at < now),
    )


def _fail_exhausted(session: Session, now: datetime, max_attempts: int) -> None:
    """Studies whose workers died ``max_attempts`` times fail rather than loop for ever."""
    rows = session.execute(
        select(Study.id, Study.attempts).where(
            Study.status == StudyStatus.PROCESSING, Study.lease_expires_at < now, Study.attempts >= max_attempts
        )
    ).all()
    for sid, attempts in rows:
        session.execute(
            update(Study)
            .where(Study.id == sid)
            .values(
                status=StudyStatus.FAILED,
                lease_owner=None,
                lease_expires_at=None,
                error=f"Processing did not finish after {attempts} attempts (worker lost or timed out).",
            )
        )
        audit.record(session, "study_failed", "worker", sid, attempts=attempts)


def claim_batch(
    engine: Engine, worker_id: str, limit: int, lease_seconds: float, max_attempts: int
) -> list[ClaimedStudy]:
    """Claim up to ``limit`` studies, highest priority first, then first in first out."""

    def work(session: Session) -> list[ClaimedStudy]:
        now = utcnow()
        _fail_exhausted(session, now, max_attempts)
        query = select(Study.id).where(_claimable(now)).order_by(Study.priority.desc(), Study.id).limit(limit)
        query = skipping_locked(session, query)
        ids = list(session.execute(query).scalars())
        if not ids:
            return []
        session.execute(
            update(Study)
            .where(Study.id.in_(ids), _claimable(now))
            .values(
                status=StudyStatus.PROCESSING,
                lease_owner=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=Study.attempts + 1,
            )
        )
        rows = session.execute(
            select(Study.id, Study.stored_path, Study.original_name, Study.attempts, Study.created_at)
            .where(Study.id.in_(ids), Study.lease_owner == worker_id)
            .order_by(Study.priority.desc(), Study.id)
        ).all()
        return [ClaimedStudy(*row) for row in rows]

    return run_write(engine, work)


def renew_leases(engine: Engine, worker_id: str, ids: list[int], lease_seconds: float) -> int:
    """Extend leases still held; returns how many were."""
    if not ids:
        return 0

    def work(session: Session) -> int:
        result = session.execute(
            update(Study)
            .where(Study.id.in_(ids), Study.lease_owner == worker_id, Study.status == StudyStatus.PROCESSING)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )
        return affected(result)

    return run_write(engine, work)


def mark_error(
    engine: Engine, study_id: int, worker_id: str, error: str, max_attempts: int, permanent: bool = False
) -> str | None:
    """Record a failure: requeue while attempts remain, else fail. Returns the new status."""

    def work(session: Session) -> str | None:
        study = session.get(Study, study_id)
        if study is None or study.lease_owner != worker_id or study.status != StudyStatus.PROCESSING:
            return None
        done_trying = permanent or study.attempts >= max_attempts
        study.status = StudyStatus.FAILED if done_trying else StudyStatus.QUEUED
        study.error = error[:2000]
        study.lease_owner = None
        study.lease_expires_at = None
        if done_trying:
            audit.record(session, "study_failed", "worker", study_id, reason=error[:500])
        return study.status

    return run_write(engine, work)


def rekey_priorities(engine: Engine, rate: float) -> int:
    """Recompute every study's stored order key for a waiting rate (run when a worker
    starts, so a changed CXR_OVERDUE_HOURS applies to studies already stored).
    The SQL mirrors :func:`core.triage.priority_key` on each dialect."""

    hours = {
        "sqlite": "((julianday(created_at) - 2440587.5) * 24.0)",
        "postgresql": "(EXTRACT(EPOCH FROM created_at) / 3600.0)",
    }

    def work(session: Session) -> int:
        expr = hours.get(session.get_bind().dialect.name)
        if expr is None:
            return 0
        sql = f"UPDATE studies SET priority = COALESCE(triage_score, 0) - :rate * {expr}"  # noqa: S608 - fixed text
        return affected(session.execute(text(sql), {"rate": rate}))

    return run_write(engine, work)


def requeue(engine: Engine, study_id: int, actor: str) -> bool:
    """Put a failed or finished study back in the queue (admin action)."""

    def work(session: Session) -> bool:
        result = session.execute(
            update(Study)
            .where(Study.id == study_id, Study.status.in_([StudyStatus.FAILED, StudyStatus.DONE]))
            .values(status=StudyStatus.QUEUED, attempts=0, error=None)
        )
        count = affected(result)
        if count:
            audit.record(session, "study_requeued", actor, study_id)
        return count == 1

    return run_write(engine, work)


def requeue_unread(engine: Engine, actor: str) -> int:
    """After the current model changes: every analysed study no reader has read yet is
    analysed again by the new model; a read study keeps what its readers saw. Audited."""
    read = select(Verdict.study_id).distinct()

    def work(session: Session) -> int:
        result = session.execute(
            update(Study)
            .where(Study.status == StudyStatus.DONE, Study.id.not_in(read))
            .values(status=StudyStatus.QUEUED, attempts=0, error=None, lease_owner=None, lease_expires_at=None)
        )
        count = affected(result)
        audit.record(session, "unread_studies_requeued", actor, None, count=count)
        return count

    return run_write(engine, work)


def queue_counts(engine: Engine) -> dict[str, int]:
    """Studies per status (every status present, 0 where none)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Study.status, func.count()).group_by(Study.status)).all()
    counts = {str(s): 0 for s in StudyStatus}
    counts.update({s: int(n) for s, n in rows})
    return counts


@dataclass(frozen=True)
class FailedStudy:
    id: int
    original_name: str
    attempts: int
    error: str | None


def failed_studies(engine: Engine) -> list[FailedStudy]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Study.id, Study.original_name, Study.attempts, Study.error)
            .where(Study.status == StudyStatus.FAILED)
            .order_by(Study.id)
        ).all()
    return [FailedStudy(*row) for row in rows]
