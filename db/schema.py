"""Database schema. Changes go through an Alembic migration in ``db/migrations``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.study_status import StudyStatus as StudyStatus  # re-exported beside the table that stores it


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="reviewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sso_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # raised at sign-out
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    original_name: Mapped[str] = mapped_column(String(512))
    stored_path: Mapped[str] = mapped_column(String(256))  # relative to the data folder
    file_format: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(16))
    view_position: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    pixel_spacing: Mapped[list[Any] | None] = mapped_column(JSON)
    photometric: Mapped[str | None] = mapped_column(String(32))
    bits_stored: Mapped[int | None] = mapped_column(Integer)
    patient_age: Mapped[int | None] = mapped_column(Integer)
    patient_sex: Mapped[str | None] = mapped_column(String(8))
    patient_key: Mapped[str | None] = mapped_column(String(64))  # pseudonymous grouping key
    # HMAC-SHA256 (site key) of the DICOM patient's ID, issuer, name and birth date: compared,
    # never shown or reversed; an instance of another patient is refused (db.studies.place_instance)
    patient_identity: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=StudyStatus.QUEUED)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    triage_score: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)
    model_version: Mapped[str | None] = mapped_column(String(64))
    abnormal: Mapped[float | None] = mapped_column(Float)  # calibrated P(abnormal) from the model
    in_domain: Mapped[bool | None] = mapped_column(Boolean)  # False: unlike the training radiographs
    domain_score: Mapped[float | None] = mapped_column(Float)
    study_instance_uid: Mapped[str | None] = mapped_column(String(64))  # None: a PNG/JPEG upload
    accession_number: Mapped[str | None] = mapped_column(String(16))
    study_date: Mapped[str | None] = mapped_column(String(8))  # DICOM DA, YYYYMMDD
    ready_at: Mapped[datetime | None] = mapped_column(DateTime)  # not analysed before (instances may still arrive)

    predictions: Mapped[list[Prediction]] = relationship(back_populates="study", cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_studies_queue", "status", "priority", "id"),
        Index("ix_studies_triage", "status", "triage_score"),
        Index("ix_studies_processed", "status", "processed_at"),  # the analytics cache key
        Index("ix_studies_created", "created_at"),
        Index("ix_studies_name", "original_name"),
        Index("ix_studies_uid", "study_instance_uid", unique=True),
    )


class Instance(Base):
    """One image of a study: an uploaded file or a received DICOM instance."""

    __tablename__ = "instances"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), unique=True)
    series_instance_uid: Mapped[str | None] = mapped_column(String(64))
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    stored_path: Mapped[str] = mapped_column(String(256))
    file_format: Mapped[str] = mapped_column(String(16))
    view_position: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    analysed: Mapped[bool] = mapped_column(Boolean)  # a frontal view the model reads
    not_analysed_reason: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(80))  # "upload" or "dicom:<calling AE>"
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_instances_study", "study_id"),)


class Outbound(Base):
    """A result object (SR, overlay) waiting for, or done with, its C-STORE to the PACS."""

    __tablename__ = "outbound"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # sr | overlay
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(256))  # relative to the data folder
    destination: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    retry_until: Mapped[datetime | None] = mapped_column(DateTime)  # failed for good after this
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_outbound_due", "status", "next_attempt_at"),)


class PacsResultJob(Base):
    """A study whose results were stored and whose DICOM result objects (SR, overlays) the
    PACS service has still to build: written in the transaction that stores the results,
    so a crash between the two never loses a study's results for the PACS."""

    __tablename__ = "pacs_result_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_pacs_result_jobs_open", "done_at", "id"),)


class SiteSetting(Base):
    """A fact about the site that every process reads from here rather than from its own
    environment (the PACS destination the PACS service sends to)."""

    __tablename__ = "site_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Prediction(Base):
    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(40))
    probability: Mapped[float] = mapped_column(Float)
    spread: Mapped[float] = mapped_column(Float, default=0.0)
    threshold: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean)
    model_name: Mapped[str] = mapped_column(String(80))
    model_version: Mapped[str] = mapped_column(String(64))
    threshold_version: Mapped[str] = mapped_column(String(64))
    tta_views: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    study: Mapped[Study] = relationship(back_populates="predictions")
    __table_args__ = (
        UniqueConstraint("study_id", "label", "model_version", name="uq_prediction"),
        Index("ix_predictions_label", "label", "flagged"),
    )


class Heatmap(Base):
    __tablename__ = "heatmaps"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(40))
    model_version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(256))  # relative to the data folder
    instance_id: Mapped[int | None] = mapped_column(Integer)  # the image the map was computed on
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("study_id", "label", "model_version", name="uq_heatmap"),)


class ImageFeatures(Base):
    """The pooled trunk features (identity view, float16 little-endian) the head read for one
    analysed image under one model version: written with the study's results (only by
    ``db.results.store_results``), read to refit the head on the site's reads."""

    __tablename__ = "image_features"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    features: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("instance_id", "model_version", name="uq_image_features"),
        Index("ix_image_features_version", "model_version", "study_id"),
    )


class ModelVersion(Base):
    """A model the site has run or trained (``db.models`` is its only writer)."""

    __tablename__ = "model_registry"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    version: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(1024))
    parent_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # candidate | shadow | current | retired
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # cohort, recipe, comparison, gate
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(80))
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime)
    promoted_by: Mapped[str | None] = mapped_column(String(80))


class ShadowScore(Base):
    """A shadow model's calibrated probabilities for one analysed image (float32
    little-endian, in its card's label order): stored, never shown to readers, never used
    for triage; read only to compare the shadow model with the current one on the studies
    readers then read (``db.shadow`` is its only writer)."""

    __tablename__ = "shadow_scores"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(String(120))
    current_version: Mapped[str] = mapped_column(String(64))  # the model readers were shown beside it
    probabilities: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("instance_id", "model_name", name="uq_shadow_scores"),
        Index("ix_shadow_scores_model", "model_name", "study_id"),
    )


class RetrainJob(Base):
    """A retraining run requested by an admin and run by a worker process."""

    __tablename__ = "retrain_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed | cancelled
    requested_by: Mapped[str | None] = mapped_column(String(80))
    out_folder: Mapped[str | None] = mapped_column(String(1024))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(String(500))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class Verdict(Base):
    """One reviewer's call on one label of one study; each reviewer keeps their own row."""

    __tablename__ = "verdicts"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(40))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    flagged: Mapped[bool] = mapped_column(Boolean)  # what the model said when reviewed
    verdict: Mapped[str] = mapped_column(String(16))  # correct | incorrect | missed
    present: Mapped[bool] = mapped_column(Boolean)  # the reviewer's truth for this label
    model_version: Mapped[str | None] = mapped_column(String(64))
    # where the reader placed the finding (core.verdict_rules.Mark): fractions of the image
    mark_x: Mapped[float | None] = mapped_column(Float)
    mark_y: Mapped[float | None] = mapped_column(Float)
    mark_image_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("study_id", "label", "reviewer_id", name="uq_verdict"),
        Index("ix_verdicts_reviewer", "reviewer_id"),
    )


class StudyScores(Base):
    """A study's probabilities and thresholds packed as float32 in the order ``labels``
    records: a derived copy of its Prediction rows, written in the same transaction (only
    by ``db.results.store_results``), so analytics read one row per study, not fifteen."""

    __tablename__ = "study_scores"
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    probabilities: Mapped[bytes] = mapped_column(LargeBinary)
    thresholds: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[str] = mapped_column(Text)  # label order of the packed values, '|'-joined


class VerdictSet(Base):
    """One reviewer's truths for one study as a bit mask (bit j: label j of ``labels``
    present): a derived copy of that reviewer's Verdict rows, written in the same
    transaction (only by ``db.reviews.write_verdict_set``)."""

    __tablename__ = "verdict_sets"
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    present_mask: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(Text)  # label order of the mask's bits, '|'-joined
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # written by an admin who settled the disagreement of the study's required reads: not
    # one of those reads (see core.reading_rules)
    adjudication: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ReadClaim(Base):
    """A reader's lease on a study they have opened to read: renewed while their screen
    is open, ignored once ``expires_at`` has passed. "Read next" skips a study whose
    reads and others' live claims already make up the reads it needs."""

    __tablename__ = "read_claims"
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (Index("ix_read_claims_expiry", "study_id", "expires_at"),)


class StudyNote(Base):
    __tablename__ = "study_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("study_id", "reviewer_id", name="uq_note"),)


class ReferenceLabel(Base):
    """Imported ground truth (NIH format), matched to studies by original file name."""

    __tablename__ = "reference_labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_index: Mapped[str] = mapped_column(String(256), unique=True)
    finding_labels: Mapped[str] = mapped_column(Text)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    view_position: Mapped[str | None] = mapped_column(String(16))
    patient_age: Mapped[int | None] = mapped_column(Integer)
    patient_sex: Mapped[str | None] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(256))
    imported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ThresholdSet(Base):
    __tablename__ = "threshold_sets"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    model_version: Mapped[str] = mapped_column(String(64))
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    method: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"
    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    current_study: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[str | None] = mapped_column(String(64))
    processed: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """Append-only (database triggers refuse UPDATE and DELETE on SQLite and PostgreSQL)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    study_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_action", "action"))
