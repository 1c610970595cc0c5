"""The model registry and retraining jobs: rows and their audit events, nothing else.

Exactly one registered model is ``current`` at a time (the one the worker analyses with);
a promotion or a rollback swaps it in one transaction and is audited with who and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from db import audit
from db.schema import ModelVersion, RetrainJob, utcnow
from db.session import run_write


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    SHADOW = "shadow"
    CURRENT = "current"
    RETIRED = "retired"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RegisteredModel:
    id: int
    name: str
    version: str
    folder: str
    parent_version: str | None
    status: str
    summary: dict[str, Any] | None
    created_at: datetime
    created_by: str | None
    promoted_at: datetime | None
    promoted_by: str | None


def _row(m: ModelVersion) -> RegisteredModel:
    return RegisteredModel(
        m.id,
        m.name,
        m.version,
        m.folder,
        m.parent_version,
        m.status,
        m.summary,
        m.created_at,
        m.created_by,
        m.promoted_at,
        m.promoted_by,
    )


def list_models(engine: Engine) -> list[RegisteredModel]:
    with Session(engine) as session:
        return [_row(m) for m in session.execute(select(ModelVersion).order_by(ModelVersion.id)).scalars()]


def find_model(engine: Engine, name_or_folder: str) -> RegisteredModel | None:
    with Session(engine) as session:
        found = session.execute(
            select(ModelVersion).where((ModelVersion.name == name_or_folder) | (ModelVersion.folder == name_or_folder))
        ).scalar_one_or_none()
        return _row(found) if found else None


def current_model(engine: Engine) -> RegisteredModel | None:
    with Session(engine) as session:
        found = session.execute(
            select(ModelVersion).where(ModelVersion.status == ModelStatus.CURRENT).order_by(ModelVersion.id.desc())
        ).scalar_one_or_none()
        return _row(found) if found else None


def register(
    engine: Engine,
    name: str,
    version: str,
    folder: str,
    status: ModelStatus,
    actor: str | None,
    parent_version: str | None = None,
    summary: dict[str, Any] | None = None,
) -> RegisteredModel:
    """Add a model (a name already registered for the same folder is returned as it is)."""

    def work(session: Session) -> RegisteredModel:
        existing = session.execute(select(ModelVersion).where(ModelVersion.name == name)).scalar_one_or_none()
        if existing is not None:
            if existing.folder != folder or existing.version != version:
                raise ValueError(f"a model named {name!r} is already registered for another folder or version")
            return _row(existing)
        row = ModelVersion(
            name=name,
            version=version,
            folder=folder,
            parent_version=parent_version,
            status=status,
            summary=summary,
            created_by=actor,
            promoted_at=utcnow() if status == ModelStatus.CURRENT else None,
            promoted_by=actor if status == ModelStatus.CURRENT else None,
        )
        session.add(row)
        session.flush()
        audit.record(session, "model_registered", actor, None, name=name, version=version, status=str(status))
        return _row(row)

    return run_write(engine, work)


def make_current(engine: Engine, name: str, actor: str, action: str, **detail: Any) -> RegisteredModel:
    """The named model becomes current and the one before it retired, in one transaction;
    audited as ``action`` (model_promoted, model_rolled_back) with ``detail``."""

    def work(session: Session) -> RegisteredModel:
        target = session.execute(select(ModelVersion).where(ModelVersion.name == name)).scalar_one_or_none()
        if target is None:
            raise ValueError(f"no registered model {name!r}")
        previous = (
            session.execute(select(ModelVersion.name).where(ModelVersion.status == ModelStatus.CURRENT)).scalars().all()
        )
        session.execute(
            update(ModelVersion).where(ModelVersion.status == ModelStatus.CURRENT).values(status=ModelStatus.RETIRED)
        )
        target.status, target.promoted_at, target.promoted_by = ModelStatus.CURRENT, utcnow(), actor
        audit.record(session, action, actor, None, name=name, version=target.version, previous=list(previous), **detail)
        return _row(target)

    return run_write(engine, work)


def shadow_model(engine: Engine) -> RegisteredModel | None:
    with Session(engine) as session:
        row = session.execute(select(ModelVersion).where(ModelVersion.status == ModelStatus.SHADOW)).scalars().first()
        return _row(row) if row else None


def set_shadow(engine: Engine, name: str | None, actor: str) -> RegisteredModel | None:
    """The named candidate runs in shadow (at most one at a time: one already in shadow goes
    back to candidate); ``None`` ends the shadow run. Audited; returns the model affected."""

    def work(session: Session) -> RegisteredModel | None:
        running = session.execute(select(ModelVersion).where(ModelVersion.status == ModelStatus.SHADOW)).scalars().all()
        for row in running:
            row.status = ModelStatus.CANDIDATE
            audit.record(session, "model_shadow_ended", actor, None, name=row.name, version=row.version)
        if name is None:
            return _row(running[0]) if running else None
        target = session.execute(select(ModelVersion).where(ModelVersion.name == name)).scalar_one_or_none()
        if target is None:
            raise ValueError(f"no registered model {name!r}")
        if target.status != ModelStatus.CANDIDATE:
            raise ValueError(f"{name} is {target.status}: only a candidate can run in shadow")
        target.status = ModelStatus.SHADOW
        audit.record(session, "model_shadow_started", actor, None, name=target.name, version=target.version)
        return _row(target)

    return run_write(engine, work)


# ---------------------------------------------------------------- retraining jobs
@dataclass(frozen=True)
class Job:
    id: int
    status: str
    requested_by: str | None
    out_folder: str | None
    progress: float
    message: str | None
    cancel_requested: bool
    created_at: datetime
    finished_at: datetime | None


def _job(j: RetrainJob) -> Job:
    return Job(
        j.id,
        j.status,
        j.requested_by,
        j.out_folder,
        j.progress,
        j.message,
        j.cancel_requested,
        j.created_at,
        j.finished_at,
    )


def request_job(engine: Engine, actor: str) -> Job:
    """Queue a retraining run (one at a time: a queued or running job is returned instead)."""

    def work(session: Session) -> Job:
        open_job = session.execute(
            select(RetrainJob).where(RetrainJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        ).scalar_one_or_none()
        if open_job is not None:
            return _job(open_job)
        job = RetrainJob(status=JobStatus.QUEUED, requested_by=actor, progress=0.0, cancel_requested=False)
        session.add(job)
        session.flush()
        audit.record(session, "retrain_requested", actor, None, job=job.id)
        return _job(job)

    return run_write(engine, work)


def claim_job(engine: Engine, worker_id: str) -> Job | None:
    def work(session: Session) -> Job | None:
        job = session.execute(
            select(RetrainJob).where(RetrainJob.status == JobStatus.QUEUED).order_by(RetrainJob.id).limit(1)
        ).scalar_one_or_none()
        if job is None:
            return None
        job.status, job.worker_id, job.started_at, job.message = JobStatus.RUNNING, worker_id, utcnow(), "started"
        return _job(job)

    return run_write(engine, work)


def _job_row(session: Session, job_id: int) -> RetrainJob:
    job = session.get(RetrainJob, job_id)
    if job is None:
        raise LookupError(f"no retraining job {job_id}")
    return job


def report_progress(engine: Engine, job_id: int, progress: float, message: str) -> bool:
    """Record progress; returns True when an admin asked to cancel."""

    def work(session: Session) -> bool:
        job = _job_row(session, job_id)
        job.progress, job.message = float(progress), message[:500]
        return bool(job.cancel_requested)

    return run_write(engine, work)


def finish_job(engine: Engine, job_id: int, status: JobStatus, message: str, out_folder: str | None = None) -> None:
    def work(session: Session) -> None:
        job = _job_row(session, job_id)
        job.status, job.message, job.finished_at = status, message[:500], utcnow()
        job.out_folder = out_folder
        if status == JobStatus.DONE:
            job.progress = 1.0
        audit.record(session, f"retrain_{status}", job.worker_id, None, job=job_id, message=message[:300])

    run_write(engine, work)


def cancel_job(engine: Engine, job_id: int, actor: str) -> None:
    def work(session: Session) -> None:
        job = session.get(RetrainJob, job_id)  # a job already gone has nothing to cancel
        if job is None or job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return
        if job.status == JobStatus.QUEUED:
            job.status, job.finished_at, job.message = JobStatus.CANCELLED, utcnow(), "cancelled before it started"
        else:
            job.cancel_requested = True
        audit.record(session, "retrain_cancel_requested", actor, None, job=job_id)

    run_write(engine, work)


def jobs(engine: Engine, limit: int = 10) -> list[Job]:
    with Session(engine) as session:
        rows = session.execute(select(RetrainJob).order_by(RetrainJob.id.desc()).limit(limit)).scalars()
        return [_job(j) for j in rows]
