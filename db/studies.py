"""Stored studies: lookup by content hash, insertion of a new upload (with its audit
row, in the caller's transaction), and the demographic fields reference tables fill in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from db import audit
from db.schema import Study, StudyStatus


@dataclass(frozen=True)
class NewStudy:
    """A validated upload, ready to be queued."""

    sha256: str
    original_name: str  # a display name, never a path
    stored_path: str  # relative to the data folder
    file_format: str
    width: int
    height: int
    created_at: datetime
    priority: float
    modality: str | None = None
    view_position: str | None = None
    pixel_spacing: list[Any] | None = None
    photometric: str | None = None
    bits_stored: int | None = None
    patient_age: int | None = None
    patient_sex: str | None = None
    uploaded_by: int | None = None


def find_by_hash(engine: Engine, sha256: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(Study.id).where(Study.sha256 == sha256)).scalar_one_or_none()


def insert_study(session: Session, new: NewStudy, actor: str | None) -> int:
    """Queue the study and audit the upload in the caller's transaction; returns its id."""
    study = Study(**{k: getattr(new, k) for k in NewStudy.__dataclass_fields__}, status=StudyStatus.QUEUED)
    session.add(study)
    session.flush()
    audit.record(session, "upload", actor, study.id, name=new.original_name, format=new.file_format, sha256=new.sha256)
    return study.id


def insert_studies(session: Session, new: list[NewStudy], actor: str | None) -> list[int]:
    """Many studies at once (benchmark databases, bulk imports), each audited like an upload."""
    if not new:
        return []
    rows = [{k: getattr(n, k) for k in NewStudy.__dataclass_fields__} | {"status": StudyStatus.QUEUED} for n in new]
    ids = list(session.execute(insert(Study).returning(Study.id, sort_by_parameter_order=True), rows).scalars())
    audit.record_many(
        session,
        "upload",
        actor,
        [(sid, {"name": n.original_name, "format": n.file_format, "sha256": n.sha256}) for sid, n in zip(ids, new)],
    )
    return ids


def stored_paths(engine: Engine, ids: list[int]) -> dict[int, str]:
    """Study id -> its original's path in the data folder."""
    with engine.connect() as conn:
        return dict(conn.execute(select(Study.id, Study.stored_path).where(Study.id.in_(ids))).all())


def original_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Study.original_name)).scalars())


def apply_reference_demographics(
    session: Session, name: str, patient_id: str | None, view: str | None, age: int | None, sex: str | None
) -> None:
    """Reference tables give the pseudonymous patient key (bootstrap by patient) and, where
    the file carried none, view position, age and sex."""
    if patient_id is not None:
        session.execute(update(Study).where(Study.original_name == name).values(patient_key=patient_id))
    if view is not None:
        session.execute(
            update(Study)
            .where(Study.original_name == name, Study.view_position.is_(None))
            .values(view_position=view, patient_age=age, patient_sex=sex)
        )


def model_versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [v for v in conn.execute(select(Study.model_version).distinct()).scalars() if v]
