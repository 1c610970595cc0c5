"""One study as a reader opens it, and the rows a read writes (verdicts, the packed
verdict set, the note): services.reading applies the reading rules and calls these in
one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session

from core import verdict_rules
from db.packing import label_key, mask_of
from db.schema import (
    Heatmap,
    Instance,
    Prediction,
    Study,
    StudyNote,
    Verdict,
    VerdictSet,
    utcnow,
)

truth_from_verdict = verdict_rules.present  # the one rule, re-exported for callers of this module


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


@dataclass(frozen=True)
class WrittenRead:
    """What ``write_verdicts`` stored: the reader's truths in label order."""

    truths: dict[str, bool]
    labels: tuple[str, ...]


def write_verdicts(
    session: Session,
    study: Study,
    reviewer_id: int,
    verdicts: dict[str, str],
    marks: dict[str, verdict_rules.Mark],
    now: datetime,
) -> WrittenRead:
    """The reader's verdict row for every label the study was analysed with (checked for
    coherence by :mod:`core.verdict_rules`; ValueError says why not) with their marks. A
    reader reads a study once: the caller has applied :mod:`core.reading_rules` and writes
    the verdict set."""
    rows = session.execute(
        select(Prediction.label, Prediction.flagged)
        .where(Prediction.study_id == study.id, Prediction.model_version == study.model_version)
        .order_by(Prediction.id)
    ).all()
    flags = {label: bool(flagged) for label, flagged in rows}
    labels = tuple(label for label, _ in rows)
    missing = set(labels) - set(verdicts)
    if missing:
        raise ValueError(f"a verdict is needed for every label; missing {sorted(missing)}")
    truths = {label: verdict_rules.present(flags[label], verdicts[label]) for label in labels}
    problem = (
        verdict_rules.contradiction(truths)
        or verdict_rules.mark_problem(truths, marks)
        or _foreign_mark_image(session, study.id, marks)
    )
    if problem:
        raise ValueError(problem)
    for label in labels:
        mark = marks.get(label)
        session.add(
            Verdict(
                study_id=study.id,
                label=label,
                reviewer_id=reviewer_id,
                flagged=flags[label],
                verdict=verdicts[label],
                present=truths[label],
                model_version=study.model_version,
                created_at=now,
                updated_at=now,
                mark_x=mark.x if mark else None,
                mark_y=mark.y if mark else None,
                mark_image_id=mark.image_id if mark else None,
            )
        )
    return WrittenRead(truths, labels)


@dataclass(frozen=True)
class VerdictSetRow:
    study_id: int
    reviewer_id: int
    truths: dict[str, bool]  # label -> present, per the reviewer
    labels: tuple[str, ...]  # the order the mask is packed in
    adjudication: bool = False  # an adjudicator's settling verdict, not one of the required reads


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
                    "adjudication": r.adjudication,
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


def save_note(session, study_id: int, reviewer_id: int, text: str) -> None:
    row = session.execute(
        select(StudyNote).where(StudyNote.study_id == study_id, StudyNote.reviewer_id == reviewer_id)
    ).scalar_one_or_none()
    if row is None:
        if text.strip():
            session.add(StudyNote(study_id=study_id, reviewer_id=reviewer_id, text=text[:5000]))
    else:
        row.text, row.updated_at = text[:5000], utcnow()
