"""Facts about the site that every process agrees on, read from the database rather than
from each process's environment (the worker and the PACS service run apart)."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import audit, pacs_result_jobs
from db.schema import SiteSetting, utcnow
from db.session import run_write

PACS_DESTINATION = "pacs_destination"  # "AE@host:port" the PACS service sends results to


def record(engine: Engine, key: str, value: str, by: str) -> None:
    """Set ``key`` to ``value`` (bounded to the column), noting who set it and when."""
    value, by = value[:500], by[:100]

    def work(session) -> None:
        row = session.get(SiteSetting, key)
        if row is None:
            session.add(SiteSetting(key=key, value=value, updated_by=by, updated_at=utcnow()))
        elif row.value != value:
            row.value, row.updated_by, row.updated_at = value, by, utcnow()

    try:
        run_write(engine, work)
    except IntegrityError:  # another process inserted the key first: now it is an update
        run_write(engine, work)


def value(engine: Engine, key: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(SiteSetting.value).where(SiteSetting.key == key)).scalar_one_or_none()


def pacs_destination(engine: Engine) -> str | None:
    """The destination a PACS service recorded for the site ("AE@host:port"), or None."""
    return value(engine, PACS_DESTINATION)


def clear_pacs_destination(engine: Engine, by: str) -> tuple[str | None, int]:
    """The site stops sending results to its PACS: the recorded destination is removed and
    the result jobs still open are closed with nothing to send, in one audited transaction.
    Returns the destination removed (None when none was recorded) and the jobs closed."""

    def work(session: Session) -> tuple[str | None, int]:
        row = session.get(SiteSetting, PACS_DESTINATION)
        removed = None if row is None else row.value
        if row is not None:
            session.delete(row)
        closed = pacs_result_jobs.close_open(session)
        if removed is not None or closed:
            audit.record(session, "pacs_destination_cleared", by, destination=removed, jobs_closed=closed)
        return removed, closed

    return run_write(engine, work)
