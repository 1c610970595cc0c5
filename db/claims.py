"""Read claims and the stored state of a study's reads: the rows behind
:mod:`core.reading_rules`. Callers apply the rule and write inside one transaction that
first locks the study (``lock_study``), so two readers can never both take the last read."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, select
from sqlalchemy.orm import Session

from core.reading_rules import StudyReads
from db.schema import ReadClaim, Study, StudyStatus, VerdictSet, utcnow

CLAIM_LEASE = timedelta(minutes=5)  # a claim lapses after this long without a renewal


def lock_study(session: Session, study_id: int) -> Study | None:
    """The study row, locked for the rest of the transaction (``FOR UPDATE`` on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    return session.execute(select(Study).where(Study.id == study_id).with_for_update()).scalar_one_or_none()


def study_reads(session: Session, study: Study, asking_id: int, reads_required: int, now: datetime) -> StudyReads:
    """The study's reads, adjudication and others' live claims, for the rule."""
    sets = session.execute(
        select(VerdictSet.reviewer_id, VerdictSet.present_mask, VerdictSet.adjudication).where(
            VerdictSet.study_id == study.id
        )
    ).all()
    reads = {r.reviewer_id: int(r.present_mask) for r in sets if not r.adjudication}
    adjudicator = next((r.reviewer_id for r in sets if r.adjudication), None)
    done = set(reads) | ({adjudicator} if adjudicator is not None else set())
    claimants = session.execute(
        select(ReadClaim.reviewer_id).where(ReadClaim.study_id == study.id, ReadClaim.expires_at > now)
    ).scalars()
    others = sum(1 for rid in claimants if rid != asking_id and rid not in done)
    return StudyReads(study.status == StudyStatus.DONE, reads, adjudicator, others, reads_required)


def take_claim(session: Session, study_id: int, reviewer_id: int, now: datetime) -> datetime:
    """Claim (or renew the claim on) a study for a reader; returns when it lapses."""
    session.execute(delete(ReadClaim).where(ReadClaim.study_id == study_id, ReadClaim.reviewer_id == reviewer_id))
    expires = now + CLAIM_LEASE
    session.add(ReadClaim(study_id=study_id, reviewer_id=reviewer_id, claimed_at=now, expires_at=expires))
    return expires


def renew_claim(session: Session, study_id: int, reviewer_id: int, now: datetime) -> bool:
    """Extend a live claim; False when the reader holds none (it lapsed or was never taken)."""
    claim = session.get(ReadClaim, (study_id, reviewer_id))
    if claim is None or claim.expires_at <= now:
        return False
    claim.expires_at = now + CLAIM_LEASE
    return True


def release_claim(session: Session, study_id: int, reviewer_id: int) -> None:
    session.execute(delete(ReadClaim).where(ReadClaim.study_id == study_id, ReadClaim.reviewer_id == reviewer_id))


def live_claims_by_others(reader_id: int, now: datetime | None = None) -> ColumnElement[int]:
    """SQL: the number of live claims on the outer query's study by readers other than
    ``reader_id`` who have not read it (for the worklist's queues)."""
    now = now or utcnow()
    has_read = exists().where(
        VerdictSet.study_id == ReadClaim.study_id, VerdictSet.reviewer_id == ReadClaim.reviewer_id
    )
    return (
        select(func.count())
        .where(
            and_(
                ReadClaim.study_id == Study.id,
                ReadClaim.reviewer_id != reader_id,
                ReadClaim.expires_at > now,
                ~has_read,
            )
        )
        .scalar_subquery()
    )
