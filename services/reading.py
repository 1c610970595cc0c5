"""Reading studies: open one (and claim it), read next, keep the claim while the screen is
open, save a read. Each verb applies :mod:`core.reading_rules` inside the write
transaction that acts on it, after locking the study, so concurrent readers cannot
over-read a study, and a save is stored for the study it was made on or refused with
its reason (never applied to another study).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from core import verdict_rules
from core.config import Settings
from core.reading_rules import Access, ReadRole, Refusal, access
from db import audit, claims
from db.reviews import (
    ReviewCase,
    StudyRecord,
    VerdictSetRow,
    load_study,
    save_note,
    write_verdict_sets,
    write_verdicts,
)
from db.schema import Study, utcnow
from db.session import DatabaseBusy, run_write
from db.studies import InstanceRecord, study_instances
from db.users import Identity
from db.worklist import next_candidates

__all__ = ["InstanceRecord", "Opened", "ReviewCase", "SaveOutcome", "StudyRecord", "study_images"]

NO_STUDY = Access(None, Refusal.NOT_ANALYSED)


@dataclass(frozen=True)
class Opened:
    """A study as a reader opens it: the case (None when no such study), and whether they
    may read it now (then they hold its claim) or see it read-only, and why."""

    study_id: int
    case: ReviewCase | None
    access: Access

    @property
    def read_only(self) -> bool:
        return not self.access.allowed


@dataclass(frozen=True)
class SaveOutcome:
    """What became of a submitted read, in words for the reader."""

    study_id: int
    saved: bool
    message: str
    role: ReadRole | None = None


def _locked_access(
    session, settings: Settings, reader: Identity, study_id: int, now: datetime, count_claims: bool
) -> tuple[Study | None, Access]:
    """Lock the study's row and apply the reading rule to it, inside the caller's write
    transaction (None: no such study)."""
    study = claims.lock_study(session, study_id)
    if study is None:
        return None, NO_STUDY
    state = claims.study_reads(session, study, reader.id, settings.reads_required, now)
    return study, access(state, reader.id, reader.is_admin, count_claims)


def _claim(engine: Engine, settings: Settings, reader: Identity, study_id: int) -> Access:
    """Apply the rule and, if the reader may read, take (or renew) their claim: one
    transaction with the study locked."""

    def work(session) -> Access:
        now = utcnow()
        _, granted = _locked_access(session, settings, reader, study_id, now, count_claims=True)
        if granted.allowed:
            claims.take_claim(session, study_id, reader.id, now)
        return granted

    return run_write(engine, work)


def open_study(engine: Engine, settings: Settings, reader: Identity, study_id: int) -> Opened:
    """Open a study for this reader: claimed for them when they may read it, read-only
    with the reason otherwise (already read, claimed by another, reads complete, waiting
    for adjudication)."""
    granted = _claim(engine, settings, reader, study_id)
    return Opened(study_id, load_study(engine, study_id, reader.id), granted)


def read_next(engine: Engine, settings: Settings, reader: Identity, after_id: int = -1) -> int | None:
    """Claim and return the study this reader should read next (worklist order), or None
    when nothing waits: a study another reader takes meanwhile is skipped."""
    for _ in range(3):  # a fresh look if every candidate was taken between query and claim
        candidates = next_candidates(engine, after_id, settings.triage(), reader.id, settings.reads_required)
        if not candidates:
            return None
        for sid in candidates:
            if _claim(engine, settings, reader, sid).allowed:
                return sid
    return None


def peek_next(engine: Engine, settings: Settings, reader: Identity, after_id: int) -> int | None:
    """The study "Read next" would most likely open after ``after_id``, without claiming it:
    the reading screen prefetches its images while the reader reads."""
    candidates = next_candidates(engine, after_id, settings.triage(), reader.id, settings.reads_required)
    return next((sid for sid in candidates if sid != after_id), None)


def keep_claim(engine: Engine, reader: Identity, study_id: int) -> bool:
    """Renew the reader's claim while their screen is open; False if it had lapsed."""
    return run_write(engine, lambda session: claims.renew_claim(session, study_id, reader.id, utcnow()))


def release(engine: Engine, reader: Identity, study_id: int) -> None:
    """Give a claimed study back (the reader moved on without reading it)."""
    run_write(engine, lambda session: claims.release_claim(session, study_id, reader.id))


def save_read(
    engine: Engine,
    settings: Settings,
    reader: Identity,
    study_id: int,
    verdicts: dict[str, str],
    note: str | None = None,
    marks: dict[str, verdict_rules.Mark] | None = None,
) -> SaveOutcome:
    """Store this reader's verdicts on ``study_id`` as a read or an adjudication, or refuse
    with the reason. Others' claims do not block a save (the first complete read is kept);
    the study's required reads are never exceeded."""
    marks = marks or {}

    def work(session) -> SaveOutcome:
        now = utcnow()
        study, granted = _locked_access(session, settings, reader, study_id, now, count_claims=False)
        if study is None:
            return SaveOutcome(study_id, False, f"Not saved: study {study_id} does not exist.")
        if not granted.allowed:
            return SaveOutcome(study_id, False, f"Not saved: {granted.reason}")
        written = write_verdicts(session, study, reader.id, verdicts, marks, now)
        adjudication = granted.role is ReadRole.ADJUDICATOR
        write_verdict_sets(
            session, [VerdictSetRow(study_id, reader.id, written.truths, written.labels, adjudication)], now
        )
        detail: dict[str, object] = {"verdicts": dict(verdicts), "role": str(granted.role)}
        if marks:
            detail["marks"] = {k: [round(m.x, 4), round(m.y, 4), m.image_id] for k, m in marks.items()}
        audit.record(session, "review_submitted", reader.username, study_id, **detail)
        if note is not None:
            save_note(session, study_id, reader.id, note)
        claims.release_claim(session, study_id, reader.id)
        what = "adjudication" if adjudication else "verdict"
        return SaveOutcome(study_id, True, f"Saved your {what} on study {study_id}.", granted.role)

    try:
        return run_write(engine, work)
    except (ValueError, DatabaseBusy) as exc:  # an incoherent verdict or a busy database: nothing was written
        return SaveOutcome(study_id, False, f"Not saved: {exc}")


def save_marked_read(
    engine: Engine,
    settings: Settings,
    reader: Identity,
    study_id: int,
    states: dict[str, str],
    marks: dict[str, verdict_rules.Mark],
    note: str | None,
) -> SaveOutcome:
    """Save a read as the reading screen makes it: what the reader marked present, absent
    or left unmarked, by the rule "unmarked findings absent" (core.verdict_rules), with
    the points of the findings marked present."""
    case = load_study(engine, study_id, reader.id)
    if case is None or case.predictions.empty:
        return SaveOutcome(study_id, False, f"Not saved: study {study_id} has no results to read.")
    flags = dict(zip(case.predictions["label"], case.predictions["flagged"].astype(bool), strict=True))
    try:
        verdicts = verdict_rules.verdicts_from_states(states, flags)
    except ValueError as exc:
        return SaveOutcome(study_id, False, f"Not saved: {exc}")
    placed = {k: m for k, m in marks.items() if k in flags and verdict_rules.present(flags[k], verdicts[k])}
    return save_read(engine, settings, reader, study_id, verdicts, note, placed)


def study_to_prefetch(
    engine: Engine, reader: Identity, study_id: int
) -> tuple[StudyRecord, list[InstanceRecord]] | None:
    """The study record and images of a study about to be opened (nothing is claimed)."""
    case = load_study(engine, study_id, reader.id)
    return None if case is None else (case.study, study_instances(engine, study_id))


def study_images(engine: Engine, study_id: int) -> list[InstanceRecord]:
    """Every image of the study, oldest first (the viewer's thumbnails)."""
    return study_instances(engine, study_id)
