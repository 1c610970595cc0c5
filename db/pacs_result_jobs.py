"""The durable outbox between the worker and the PACS service: one job per DICOM study whose
results were stored, recorded in the same transaction as the results (``record``), claimed
by the PACS service with a lease, and closed in the transaction that queues the study's
result objects for C-STORE (``close``). A job that fails is retried with back-off and given
up after ``MAX_ATTEMPTS`` (audited; the study's results stay stored and readable)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, not_, or_, select, update
from sqlalchemy.orm import Session

from db import audit
from db.schema import PacsResultJob, utcnow
from db.session import affected, run_write, skipping_locked

MAX_ATTEMPTS = 5
SUPERSEDED = "superseded by a newer analysis of the study"
NOTHING_TO_SEND = "no DICOM image or no destination: nothing to send"
DESTINATION_CLEARED = "the site's PACS destination was cleared: nothing to send"


@dataclass(frozen=True)
class ResultJob:
    id: int
    study_id: int
    model_version: str
    attempts: int  # including the claim that returned it


def record(session: Session, study_id: int, model_version: str) -> None:
    """In the caller's (the results') transaction: the study's results are to be sent. An
    earlier job of the same study not yet done is closed: its results were replaced."""
    now = utcnow()
    session.execute(
        update(PacsResultJob)
        .where(PacsResultJob.study_id == study_id, PacsResultJob.done_at.is_(None))
        .values(done_at=now, last_error=SUPERSEDED, claimed_by=None, claim_expires_at=None)
    )
    session.add(PacsResultJob(study_id=study_id, model_version=model_version, created_at=now, attempts=0))


def close_open(session: Session) -> int:
    """In the caller's transaction (the site stops sending results): every open job is closed
    as having nothing to send, so none waits for a service that no longer runs; one waiting
    out its back-off too (no consumer, ``claim_expires_at`` its retry time). Jobs a service
    holds right now (a consumer whose claim has not expired) are left to it."""
    now = utcnow()
    held = and_(PacsResultJob.claimed_by.is_not(None), PacsResultJob.claim_expires_at > now)
    done = session.execute(
        update(PacsResultJob)
        .where(PacsResultJob.done_at.is_(None), not_(held))
        .values(done_at=now, claimed_by=None, claim_expires_at=None, last_error=DESTINATION_CLEARED)
    )
    return affected(done)


def _claimable(now: datetime):
    return (
        PacsResultJob.done_at.is_(None),
        PacsResultJob.attempts < MAX_ATTEMPTS,
        or_(PacsResultJob.claim_expires_at.is_(None), PacsResultJob.claim_expires_at <= now),
    )


def _give_up_exhausted(session: Session, now: datetime) -> None:
    """Jobs whose consumer stopped during their last attempt (claim expired, attempts spent)
    are given up, audited, rather than left open where nothing claims or counts them."""
    rows = session.execute(
        select(PacsResultJob.id, PacsResultJob.study_id, PacsResultJob.attempts).where(
            PacsResultJob.done_at.is_(None),
            PacsResultJob.attempts >= MAX_ATTEMPTS,
            PacsResultJob.claim_expires_at <= now,
        )
    ).all()
    for job_id, study_id, attempts in rows:
        error = f"the build did not finish after {attempts} attempts (consumer lost or timed out)"
        session.execute(
            update(PacsResultJob)
            .where(PacsResultJob.id == job_id)
            .values(done_at=now, claimed_by=None, last_error=error)
        )
        audit.record(session, "pacs_results_failed", "pacs", study_id, attempts=attempts, error=error)


def claim(
    engine: Engine, consumer: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[ResultJob]:
    """Claim up to ``limit`` open jobs, oldest first; a job whose claim expired (its consumer
    died) or whose back-off ended is claimable again."""

    def work(session: Session) -> list[ResultJob]:
        at = now or utcnow()
        _give_up_exhausted(session, at)
        query = select(PacsResultJob.id).where(*_claimable(at)).order_by(PacsResultJob.id).limit(limit)
        query = skipping_locked(session, query)
        ids = list(session.execute(query).scalars())
        if not ids:
            return []
        session.execute(
            update(PacsResultJob)
            .where(PacsResultJob.id.in_(ids), *_claimable(at))
            .values(
                claimed_by=consumer,
                claim_expires_at=at + timedelta(seconds=lease_seconds),
                attempts=PacsResultJob.attempts + 1,
            )
        )
        rows = session.execute(
            select(PacsResultJob.id, PacsResultJob.study_id, PacsResultJob.model_version, PacsResultJob.attempts)
            .where(PacsResultJob.id.in_(ids), PacsResultJob.claimed_by == consumer, PacsResultJob.done_at.is_(None))
            .order_by(PacsResultJob.id)
        ).all()
        return [ResultJob(*row) for row in rows]

    return run_write(engine, work)


def close(session: Session, job: ResultJob, consumer: str, outcome: str | None = None) -> bool:
    """In the caller's transaction (the one that queues the result objects): the job is done.
    False when the claim was lost (expired and taken by another consumer): the caller rolls
    back, so a study's objects are never queued twice."""
    done = session.execute(
        update(PacsResultJob)
        .where(PacsResultJob.id == job.id, PacsResultJob.claimed_by == consumer, PacsResultJob.done_at.is_(None))
        .values(done_at=utcnow(), claimed_by=None, claim_expires_at=None, last_error=outcome)
    )
    return affected(done) == 1


def fail(engine: Engine, job: ResultJob, consumer: str, error: str, retry_after: timedelta) -> bool:
    """Record a failed attempt: retried after ``retry_after``, or given up (audited) once it
    has had ``MAX_ATTEMPTS``. True when it was given up."""
    given_up = job.attempts >= MAX_ATTEMPTS

    def work(session: Session) -> None:
        now = utcnow()
        session.execute(
            update(PacsResultJob)
            .where(PacsResultJob.id == job.id, PacsResultJob.claimed_by == consumer)
            .values(
                claimed_by=None,
                claim_expires_at=now + retry_after,
                last_error=error[:500],
                done_at=now if given_up else None,
            )
        )
        if given_up:
            audit.record(
                session, "pacs_results_failed", consumer, job.study_id, attempts=job.attempts, error=error[:300]
            )

    run_write(engine, work)
    return given_up


def given_up(engine: Engine) -> int:
    """Jobs given up after their attempts (closed with an error, never built): the study's
    results never reached the PACS. Home counts them with the failed sends."""
    query = select(func.count()).where(
        PacsResultJob.done_at.is_not(None),
        PacsResultJob.attempts >= MAX_ATTEMPTS,
        PacsResultJob.last_error.is_not(None),
        PacsResultJob.last_error.not_in([SUPERSEDED, NOTHING_TO_SEND, DESTINATION_CLEARED]),
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
