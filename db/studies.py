"""Stored studies and their images: lookup by content hash or SOP Instance UID, placing a
new image in its study (a DICOM instance joins the study of its StudyInstanceUID; any
other file is a study of one image), and the demographic fields reference tables fill in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from core.errors import PatientConflict
from db import audit
from db.schema import Instance, Study, StudyStatus


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
    study_instance_uid: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    ready_at: datetime | None = None  # not analysed before (more instances may arrive)
    patient_identity: str | None = None  # keyed digest of the DICOM patient (services.ingest)


@dataclass(frozen=True)
class NewInstance:
    """One validated image of a study."""

    sha256: str
    stored_path: str
    file_format: str
    width: int
    height: int
    analysed: bool  # a frontal view the model reads
    not_analysed_reason: str | None = None
    source: str | None = None  # "upload" or "dicom:<calling AE title>"
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_class_uid: str | None = None
    view_position: str | None = None


@dataclass(frozen=True)
class InstanceRecord:
    id: int
    study_id: int
    sha256: str
    stored_path: str
    file_format: str
    width: int
    height: int
    view_position: str | None
    analysed: bool
    not_analysed_reason: str | None
    sop_instance_uid: str | None
    series_instance_uid: str | None
    sop_class_uid: str | None


@dataclass(frozen=True)
class Placed:
    study_id: int
    new_study: bool


def find_by_hash(engine: Engine, sha256: str) -> int | None:
    """The study holding an image with these bytes, if any (every study's first image is an
    instance row: insert_study writes it, migration 0005 backfilled the older ones)."""
    with engine.connect() as conn:
        return conn.execute(select(Instance.study_id).where(Instance.sha256 == sha256)).scalar_one_or_none()


def find_instance(engine: Engine, sop_instance_uid: str) -> int | None:
    """The study holding the instance with this SOP Instance UID, if any."""
    found = stored_instance(engine, sop_instance_uid)
    return found[0] if found else None


def stored_instance(engine: Engine, sop_instance_uid: str) -> tuple[int, str] | None:
    """(study id, stored path) of the instance with this SOP Instance UID, if any."""
    with engine.connect() as conn:
        row = conn.execute(
            select(Instance.study_id, Instance.stored_path).where(Instance.sop_instance_uid == sop_instance_uid)
        ).first()
    return (row[0], row[1]) if row else None


def insert_study(
    session: Session, new: NewStudy, actor: str | None, instance: NewInstance | None = None, action: str = "upload"
) -> int:
    """Queue a new study with its first image and audit the upload in the caller's
    transaction; returns its id."""
    study = Study(**{k: getattr(new, k) for k in NewStudy.__dataclass_fields__}, status=StudyStatus.QUEUED)
    session.add(study)
    session.flush()
    session.add(Instance(study_id=study.id, **(instance.__dict__ if instance else _instance_of(new))))
    audit.record(
        session,
        action,
        actor,
        study.id,
        name=new.original_name,
        format=new.file_format,
        sha256=new.sha256,
        sop_instance_uid=instance.sop_instance_uid if instance else None,
    )
    return study.id


def _instance_of(new: NewStudy) -> dict[str, Any]:
    return {
        "sha256": new.sha256,
        "stored_path": new.stored_path,
        "file_format": new.file_format,
        "width": new.width,
        "height": new.height,
        "analysed": True,
        "view_position": new.view_position,
        "source": "upload",
    }


def place_instance(
    session: Session, study: NewStudy, instance: NewInstance, actor: str | None, action: str = "upload"
) -> Placed:
    """Add an image to the study of its StudyInstanceUID (creating the study if it is the
    first), in the caller's transaction. A new image re-opens a study for analysis: it is
    queued again not before ``study.ready_at`` and an analysis under way is fenced off
    (its lease is cleared, so its result is discarded and the study analysed again whole)."""
    existing = None
    if study.study_instance_uid:
        query = select(Study).where(Study.study_instance_uid == study.study_instance_uid)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        existing = session.execute(query).scalar_one_or_none()
    if existing is None:
        return Placed(insert_study(session, study, actor, instance, action), True)
    _check_same_patient(existing, study)
    if (
        instance.analysed
        and not session.execute(
            select(Instance.id).where(Instance.study_id == existing.id, Instance.analysed.is_(True))
        ).first()
    ):  # the first frontal image becomes the study's representative image
        existing.stored_path, existing.file_format = instance.stored_path, instance.file_format
        existing.width, existing.height, existing.view_position = (
            instance.width,
            instance.height,
            instance.view_position,
        )
    existing.status, existing.ready_at, existing.attempts, existing.error = StudyStatus.QUEUED, study.ready_at, 0, None
    existing.lease_owner = existing.lease_expires_at = None
    session.add(Instance(study_id=existing.id, **instance.__dict__))
    session.flush()
    audit.record(
        session,
        action,
        actor,
        existing.id,
        name=study.original_name,
        format=instance.file_format,
        sha256=instance.sha256,
        sop_instance_uid=instance.sop_instance_uid,
    )
    return Placed(existing.id, False)


def _check_same_patient(existing: Study, arriving: NewStudy) -> None:
    """Refuse an instance whose patient is not the study's: one StudyInstanceUID sent with
    two PatientIDs (or issuers, names, birth dates) is a sender's error, and merging would
    read, triage and report two patients as one. A study stored before identities were kept
    takes the identity of the first instance that brings one."""
    if existing.patient_identity is None:
        existing.patient_identity = arriving.patient_identity
        return
    if arriving.patient_identity != existing.patient_identity:
        raise PatientConflict(
            f"This image names study {existing.id}'s StudyInstanceUID but another patient "
            "(patient ID, issuer, name or birth date differ); it was not added to that study."
        )


def analysed_instances(engine: Engine, study_ids: list[int]) -> dict[int, list[InstanceRecord]]:
    """Each study's images that the model reads, oldest first."""
    out: dict[int, list[InstanceRecord]] = {sid: [] for sid in study_ids}
    for record in _instances(engine, [Instance.study_id.in_(study_ids), Instance.analysed.is_(True)]):
        out[record.study_id].append(record)
    return out


def study_instances(engine: Engine, study_id: int) -> list[InstanceRecord]:
    """Every image of a study (analysed or not), oldest first."""
    return _instances(engine, [Instance.study_id == study_id])


def _instances(engine: Engine, conditions: list) -> list[InstanceRecord]:
    fields = [getattr(Instance, name) for name in InstanceRecord.__dataclass_fields__]
    with engine.connect() as conn:
        rows = conn.execute(select(*fields).where(*conditions).order_by(Instance.id)).all()
    return [InstanceRecord(*row) for row in rows]


def insert_studies(session: Session, new: list[NewStudy], actor: str | None) -> list[int]:
    """Many studies at once (benchmark databases, bulk imports), each audited like an upload."""
    if not new:
        return []
    rows = [{k: getattr(n, k) for k in NewStudy.__dataclass_fields__} | {"status": StudyStatus.QUEUED} for n in new]
    ids = list(session.execute(insert(Study).returning(Study.id, sort_by_parameter_order=True), rows).scalars())
    session.execute(insert(Instance), [{"study_id": sid, **_instance_of(n)} for sid, n in zip(ids, new)])
    audit.record_many(
        session,
        "upload",
        actor,
        [(sid, {"name": n.original_name, "format": n.file_format, "sha256": n.sha256}) for sid, n in zip(ids, new)],
    )
    return ids


def known_hashes(engine: Engine) -> set[str]:
    """The content hash of every stored image (what owns a file in originals/ and previews/)."""
    with engine.connect() as conn:
        return set(conn.execute(select(Instance.sha256)).scalars()) | set(conn.execute(select(Study.sha256)).scalars())


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
