"""What the screens show about the running site, and the admin's operational verbs: the
database opened (and migrated) for the app, queue counts, live workers, failed studies
and their requeue, the audit log."""

from __future__ import annotations

from sqlalchemy import Engine

from core.config import Settings
from db import audit, heartbeats, queue
from db.audit import AuditRow
from db.bootstrap import open_database as _open_database
from db.heartbeats import WorkerStatus
from db.queue import FailedStudy

__all__ = [
    "AuditRow",
    "FailedStudy",
    "WorkerStatus",
    "audit_actions",
    "audit_events",
    "failed_studies",
    "latest_device",
    "live_workers",
    "open_database",
    "queue_counts",
    "requeue",
]


def open_database(settings: Settings) -> Engine:
    """The site's database, brought to the newest schema before the first page reads it."""
    return _open_database(settings)


def queue_counts(engine: Engine) -> dict[str, int]:
    """Studies per status, every status present."""
    return queue.queue_counts(engine)


def live_workers(engine: Engine) -> list[WorkerStatus]:
    """Workers that have reported recently (the home page and the upload page's status)."""
    return heartbeats.live_workers(engine)


def latest_device(engine: Engine) -> str | None:
    """The device the last worker said it runs the model on."""
    return heartbeats.latest_device(engine)


def failed_studies(engine: Engine) -> list[FailedStudy]:
    return queue.failed_studies(engine)


def requeue(engine: Engine, study_id: int, actor: str) -> bool:
    """Put a failed or finished study back on the queue (audited)."""
    return queue.requeue(engine, study_id, actor)


def audit_actions(engine: Engine) -> list[str]:
    return audit.action_names(engine)


def audit_events(engine: Engine, action: str | None = None, limit: int = 500) -> list[AuditRow]:
    return audit.events(engine, action, limit)
