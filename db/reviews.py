"""Worklist and review queries, and verdict submission in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, and_, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from core import verdict_rules
from core.labels import NO_FINDING
from core.triage import TriagePolicy
from db import audit
from db.packing import label_key, mask_of
from db.schema import (
    Heatmap,
    Instance,
    Prediction,
    Study,
    StudyNote,
    StudyStatus,
    User,
    Verdict,
    VerdictSet,
    utcnow,
)
from db.session import run_write

truth_from_verdict = verdict_rules.present  # the one rule, re-exported for callers of this module


QUEUES = ("to_read", "second_read", "adjudication", "all")


@dataclass
class WorklistFilter:
    statuses: tuple[str, ...] = (StudyStatus.DONE,)
    finding: str | None = None
    reviewed: bool | None = None  # by anyone; None: both
    reviewer_id: int | None = None  # studies this reviewer has read
    date_from: datetime | None = None
    date_to: datetime | None = None
    name_contains: str = ""
    reader_id: int | None = None  # whose worklist: "read by me" and the queues are for this reader
    queue: str = "all"  # to_read | second_read | adjudication | all (see worklist)
    reads_required: int = 1  # 2 where the site double-reads


def _reads():
    return select(func.count()).where(VerdictSet.study_id == Study.id).scalar_subquery()


def _disagreement():
    """Readers' verdict sets differ (distinct packed truths) and no adjudicator has read it."""
    distinct = select(func.count(func.distinct(VerdictSet.present_mask))).where(VerdictSet.study_id == Study.id)
    adjudicated = exists().where(
        VerdictSet.study_id == Study.id, VerdictSet.reviewer_id == User.id, User.role == "admin"
    )
    return and_(distinct.scalar_subquery() > 1, ~adjudicated)


def worklist(engine: Engine, flt: WorklistFilter, triage: TriagePolicy, limit: int = 200) -> pd.DataFrame:
    """One reader's worklist in triage order (:mod:`core.triage`), ordered and limited in SQL.

    Queues for ``flt.reader_id``: ``to_read`` — studies this reader has not read that still
    need a read (fewer than ``reads_required``), most urgent first; ``second_read`` — the
    part of those another reader has already read; ``adjudication`` — studies whose readers
    disagree and no adjudicator has decided; ``all`` — everything, the reader's unread
    first. "Read next" and the Review page take the first ``to_read`` study (next_study),
    so the two never disagree. Filters are bound parameters (never string-built SQL); the
    name search escapes LIKE wildcards. ``priority`` is the current priority (suspicion +
    waiting boost); ``waiting_h`` the hours since the study arrived.
    """
    if flt.queue not in QUEUES:
        raise ValueError(f"queue must be one of {QUEUES}")
    reviewed = exists().where(Verdict.study_id == Study.id)
    reads = _reads()
    mine = exists().where(VerdictSet.study_id == Study.id, VerdictSet.reviewer_id == (flt.reader_id or -1))
    query = select(
        Study.id,
        Study.original_name,
        Study.status,
        Study.triage_score,
        Study.created_at,
        Study.view_position,
        Study.file_format,
        Study.error,
        reviewed.label("reviewed"),
        Study.abnormal,
        Study.in_domain,
        Study.priority.label("priority_key"),
        Study.accession_number,
        Study.study_date,
        Study.patient_age,
        Study.patient_sex,
        reads.label("reads"),
        mine.label("read_by_me"),
    )
    conds = [Study.status.in_(flt.statuses)] if flt.statuses else []
    if flt.queue in ("to_read", "second_read"):
        conds += [~mine, reads < max(1, flt.reads_required)]
        if flt.queue == "second_read":
            conds.append(reads > 0)
    elif flt.queue == "adjudication":
        conds.append(_disagreement())
    if flt.finding:
        conds.append(
            exists().where(
                Prediction.study_id == Study.id, Prediction.label == flt.finding, Prediction.flagged.is_(True)
            )
        )
    if flt.reviewed is not None:
        conds.append(reviewed if flt.reviewed else ~reviewed)
    if flt.reviewer_id is not None:
        conds.append(exists().where(Verdict.study_id == Study.id, Verdict.reviewer_id == flt.reviewer_id))
    if flt.date_from:
        conds.append(Study.created_at >= flt.date_from)
    if flt.date_to:
        conds.append(Study.created_at <= flt.date_to)
    if flt.name_contains:
        escaped = flt.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(Study.original_name.like(f"%{escaped}%", escape="\\"))
    query = (
        query.where(and_(*conds)).order_by(mine, Study.priority.desc(), Study.abnormal.desc(), Study.id).limit(limit)
    )
    columns = [
        "id",
        "original_name",
        "status",
        "triage_score",
        "created_at",
        "view_position",
        "file_format",
        "error",
        "reviewed",
        "abnormal",
        "in_domain",
        "priority_key",
        "accession_number",
        "study_date",
        "patient_age",
        "patient_sex",
        "reads",
        "read_by_me",
    ]
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(query).mappings().all(), columns=columns)
    if df.empty:
        df["priority"] = []
        df["flagged"] = []
        df["waiting_h"] = []
        return df.drop(columns="priority_key")
    now = utcnow()
    df["priority"] = df["priority_key"].astype(float).map(lambda key: round(triage.current(key, now), 4))
    df["waiting_h"] = ((now - pd.to_datetime(df["created_at"])).dt.total_seconds() / 3600).round(1)
    df["reviewed"] = df["reviewed"].astype(bool)
    df["read_by_me"] = df["read_by_me"].astype(bool)
    df["flagged"] = df["id"].map(_flagged_labels(engine, df["id"].tolist()))
    return df.drop(columns="priority_key")


def _flagged_labels(engine: Engine, ids: list[int]) -> dict[int, str]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    with engine.connect() as conn:
        # "No Finding" above its threshold is the model calling the study normal, not a flag
        rows = conn.execute(
            select(Prediction.study_id, Prediction.label).where(
                Prediction.study_id.in_(ids), Prediction.flagged.is_(True), Prediction.label != NO_FINDING
            )
        )
        for sid, label in rows:
            out[sid].append(label)
    return {k: ", ".join(sorted(v)) for k, v in out.items()}


def next_study(
    engine: Engine, after_id: int, triage: TriagePolicy, reviewer_id: int, reads_required: int = 1
) -> int | None:
    """The study this reviewer should read next: the first of their ``to_read`` queue (the
    worklist's own order), never one they have read, never ``after_id``."""
    flt = WorklistFilter(reader_id=reviewer_id, queue="to_read", reads_required=reads_required)
    for sid in worklist(engine, flt, triage, limit=2)["id"]:
        if sid != after_id:
            return int(sid)
    return None


@dataclass(frozen=True)
class StudyRecord:
    """The stored facts about one study that the review screen shows."""

    id: int
    original_name: str
    file_format: str
    width: int
    height: int
    view_position: str | None
    created_at: datetime
    status: str
    error: str | None
    stored_path: str
    sha256: str
    model_version: str | None
    abnormal: float | None
    in_domain: bool | None
    domain_score: float | None

    @property
    def outside_domain(self) -> bool:
        return self.in_domain is not None and not self.in_domain


@dataclass
class ReviewCase:
    """One study as one reviewer opens it: results, heatmaps, and their own verdicts."""

    study: StudyRecord
    predictions: pd.DataFrame  # label, probability, spread, threshold, flagged (flagged, most probable first)
    heatmaps: dict[str, str]
    my_verdicts: dict[str, str]
    other_reviews: int
    note: str
    my_marks: dict[str, verdict_rules.Mark] = field(default_factory=dict)  # label -> where I placed it


def load_study(engine: Engine, study_id: int, reviewer_id: int) -> ReviewCase | None:
    fields = [getattr(Study, name) for name in StudyRecord.__dataclass_fields__]
    with engine.connect() as conn:
        row = conn.execute(select(*fields).where(Study.id == study_id)).first()
        if row is None:
            return None
        study = StudyRecord(*row)
        version = study.model_version
        preds = pd.DataFrame(
            conn.execute(
                select(
                    Prediction.label,
                    Prediction.probability,
                    Prediction.spread,
                    Prediction.threshold,
                    Prediction.flagged,
                    Prediction.model_name,
                    Prediction.threshold_version,
                ).where(Prediction.study_id == study_id, Prediction.model_version == version)
            )
            .mappings()
            .all()
        )
        heat = dict(
            conn.execute(
                select(Heatmap.label, Heatmap.path).where(
                    Heatmap.study_id == study_id, Heatmap.model_version == version
                )
            ).all()
        )
        my_rows = conn.execute(
            select(Verdict.label, Verdict.verdict, Verdict.mark_x, Verdict.mark_y, Verdict.mark_image_id).where(
                Verdict.study_id == study_id, Verdict.reviewer_id == reviewer_id
            )
        ).all()
        mine = {r.label: r.verdict for r in my_rows}
        marks = {
            r.label: verdict_rules.Mark(r.mark_x, r.mark_y, r.mark_image_id) for r in my_rows if r.mark_x is not None
        }
        others = conn.execute(
            select(Verdict.reviewer_id)
            .distinct()
            .where(Verdict.study_id == study_id, Verdict.reviewer_id != reviewer_id)
        ).all()
        note = conn.execute(
            select(StudyNote.text).where(StudyNote.study_id == study_id, StudyNote.reviewer_id == reviewer_id)
        ).scalar_one_or_none()
    if not preds.empty:
        preds = preds.sort_values(["flagged", "probability"], ascending=[False, False]).reset_index(drop=True)
    return ReviewCase(study, preds, heat, mine, len(others), note or "", marks)


def _foreign_mark_image(session: Session, study_id: int, marks: dict[str, verdict_rules.Mark]) -> str | None:
    """Why a mark cannot be stored: it names an image that is not one of this study's."""
    named = {m.image_id for m in marks.values() if m.image_id is not None}
    if not named:
        return None
    own = set(session.execute(select(Instance.id).where(Instance.study_id == study_id)).scalars())
    foreign = sorted(named - own)
    return f"a point is placed on image {foreign[0]}, which is not an image of study {study_id}." if foreign else None


def submit_review(
    engine: Engine,
    study_id: int,
    reviewer_id: int,
    verdicts: dict[str, str],
    note: str | None = None,
    actor: str | None = None,
    marks: dict[str, verdict_rules.Mark] | None = None,
) -> int:
    """Record a verdict for every label the study was analysed with, in one transaction.

    Each reviewer has their own rows; a changed verdict updates the reviewer's row and
    the previous value goes to the audit log. ``marks`` place findings marked present on
    the image (a label without one keeps none). Returns the number of changed labels.
    """
    marks = marks or {}

    def work(session) -> int:
        study = session.get(Study, study_id)
        if study is None or study.status != StudyStatus.DONE:
            raise ValueError("only analysed studies can be reviewed")
        rows = session.execute(
            select(Prediction.label, Prediction.flagged)
            .where(Prediction.study_id == study_id, Prediction.model_version == study.model_version)
            .order_by(Prediction.id)
        ).all()
        flags = dict(rows)
        labels = [label for label, _ in rows]
        missing = set(labels) - set(verdicts)
        if missing:
            raise ValueError(f"a verdict is needed for every label; missing {sorted(missing)}")
        existing = {
            v.label: v
            for v in session.execute(
                select(Verdict).where(Verdict.study_id == study_id, Verdict.reviewer_id == reviewer_id)
            ).scalars()
        }
        truths = {label: verdict_rules.present(bool(flags.get(label, False)), verdicts[label]) for label in labels}
        problem = (
            verdict_rules.contradiction(truths)
            or verdict_rules.mark_problem(truths, marks)
            or _foreign_mark_image(session, study_id, marks)
        )
        if problem:
            raise ValueError(problem)
        now, changed, previous = utcnow(), 0, {}
        for label in labels:
            verdict, present = verdicts[label], truths[label]
            row = existing.get(label)
            if row is None:
                row = Verdict(
                    study_id=study_id,
                    label=label,
                    reviewer_id=reviewer_id,
                    flagged=bool(flags.get(label, False)),
                    verdict=verdict,
                    present=present,
                    model_version=study.model_version,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
            elif row.verdict != verdict:
                previous[label] = row.verdict
                row.verdict, row.present, row.updated_at = verdict, present, now
                changed += 1
            mark = marks.get(label)
            row.mark_x, row.mark_y = (mark.x, mark.y) if mark else (None, None)
            row.mark_image_id = mark.image_id if mark else None
        write_verdict_sets(session, [VerdictSetRow(study_id, reviewer_id, truths, tuple(labels))], now)
        if previous:
            audit.record(
                session, "verdict_changed", actor, study_id, previous=previous, new={k: verdicts[k] for k in previous}
            )
        detail = {"verdicts": dict(verdicts)}
        if marks:
            detail["marks"] = {k: [round(m.x, 4), round(m.y, 4), m.image_id] for k, m in marks.items()}
        audit.record(session, "review_submitted", actor, study_id, **detail)
        if note is not None:
            _save_note(session, study_id, reviewer_id, note)
        return changed

    return run_write(engine, work)


@dataclass(frozen=True)
class VerdictSetRow:
    study_id: int
    reviewer_id: int
    truths: dict[str, bool]  # label -> present, per the reviewer
    labels: tuple[str, ...]  # the order the mask is packed in


def write_verdict_sets(session, rows: list[VerdictSetRow], at: datetime) -> None:
    """The only writer of ``verdict_sets``: each reviewer's truths packed with their label
    order, replacing that reviewer's earlier set for the study."""
    for row in rows:
        session.execute(
            delete(VerdictSet).where(VerdictSet.study_id == row.study_id, VerdictSet.reviewer_id == row.reviewer_id)
        )
    if rows:
        session.execute(
            insert(VerdictSet),
            [
                {
                    "study_id": r.study_id,
                    "reviewer_id": r.reviewer_id,
                    "present_mask": mask_of(r.truths, r.labels),
                    "labels": label_key(r.labels),
                    "updated_at": at,
                }
                for r in rows
            ],
        )


@dataclass(frozen=True)
class RecordedReview:
    """A complete review given in bulk (benchmark databases): truths as the reviewer saw them."""

    study_id: int
    reviewer_id: int
    truths: dict[str, bool]
    flagged: frozenset[str]
    labels: tuple[str, ...]
    model_version: str


def record_reviews(session, reviews: list[RecordedReview], at: datetime) -> None:
    """Verdict rows and their packed sets for many reviews at once (no change history:
    these are first reviews)."""
    if not reviews:
        return
    rows = []
    for r in reviews:
        for label in r.labels:
            present, flagged = r.truths[label], label in r.flagged
            verdict = verdict_rules.verdict_for(flagged, present)
            rows.append(
                {
                    "study_id": r.study_id,
                    "label": label,
                    "reviewer_id": r.reviewer_id,
                    "flagged": flagged,
                    "verdict": verdict,
                    "present": present,
                    "model_version": r.model_version,
                    "created_at": at,
                    "updated_at": at,
                }
            )
    session.execute(insert(Verdict), rows)
    write_verdict_sets(session, [VerdictSetRow(r.study_id, r.reviewer_id, r.truths, r.labels) for r in reviews], at)


def _save_note(session, study_id: int, reviewer_id: int, text: str) -> None:
    row = session.execute(
        select(StudyNote).where(StudyNote.study_id == study_id, StudyNote.reviewer_id == reviewer_id)
    ).scalar_one_or_none()
    if row is None:
        if text.strip():
            session.add(StudyNote(study_id=study_id, reviewer_id=reviewer_id, text=text[:5000]))
    else:
        row.text, row.updated_at = text[:5000], utcnow()


def reviewers(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(User.id, User.username).order_by(User.username)).all())


def longest_waiting(engine: Engine, limit: int = 5) -> pd.DataFrame:
    reviewed = exists().where(Verdict.study_id == Study.id)
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(Study.id, Study.original_name, Study.status, Study.created_at)
                .where(~reviewed, Study.status.in_([StudyStatus.QUEUED, StudyStatus.PROCESSING, StudyStatus.DONE]))
                .order_by(Study.created_at, Study.id)
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return pd.DataFrame(rows, columns=["id", "original_name", "status", "created_at"])
