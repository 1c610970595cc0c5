"""Worker heartbeats: what each worker is doing, so Home can say whether studies move."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from db.schema import WorkerHeartbeat, utcnow
from db.session import run_write

LIVE_WITHIN = timedelta(minutes=2)
STARTING_WITHIN = timedelta(minutes=15)  # loading a model can take minutes on a CPU


@dataclass(frozen=True)
class WorkerStatus:
    worker_id: str
    state: str
    current_study: int | None
    device: str | None
    processed: int
    last_error: str | None
    updated_at: datetime

    @property
    def starting(self) -> bool:
        return self.state.startswith("starting")


def beat(engine: Engine, status: WorkerStatus) -> None:
    """Insert or update this worker's row (the caller decides what a failure means)."""

    def work(session) -> None:
        hb = session.get(WorkerHeartbeat, status.worker_id)
        if hb is None:
            hb = WorkerHeartbeat(worker_id=status.worker_id, state=status.state)
            session.add(hb)
        hb.state, hb.current_study, hb.device = status.state, status.current_study, status.device
        hb.processed, hb.updated_at, hb.last_error = status.processed, status.updated_at, status.last_error

    run_write(engine, work)


def live_workers(engine: Engine, now: datetime | None = None) -> list[WorkerStatus]:
    """Workers seen recently and not stopped; one still loading its model counts longer."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                WorkerHeartbeat.worker_id,
                WorkerHeartbeat.state,
                WorkerHeartbeat.current_study,
                WorkerHeartbeat.device,
                WorkerHeartbeat.processed,
                WorkerHeartbeat.last_error,
                WorkerHeartbeat.updated_at,
            ).order_by(WorkerHeartbeat.updated_at.desc())
        ).all()
    workers = [WorkerStatus(*row) for row in rows]
    return [
        w
        for w in workers
        if (w.updated_at > now - LIVE_WITHIN and w.state != "stopped")
        or (w.starting and w.updated_at > now - STARTING_WITHIN)
    ]


def latest_device(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(WorkerHeartbeat.device).order_by(WorkerHeartbeat.updated_at.desc()).limit(1)
        ).scalar_one_or_none()
