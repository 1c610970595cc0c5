"""Engines and sessions. SQLite gets WAL, foreign keys, a busy timeout and
``BEGIN IMMEDIATE`` for writers, so concurrent writers wait instead of failing."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Result, Select, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000  # one wait for another writer's lock
WRITE_DEADLINE_S = 30.0  # all retries of one write together: then a clear, retryable message


class DatabaseBusy(RuntimeError):
    """Another process held the database's write lock too long; trying again later works."""


def affected(result: Result) -> int:
    """Rows an UPDATE or DELETE touched (its result is a cursor result; the ORM's
    ``execute`` is typed as returning any result)."""
    return cast(CursorResult, result).rowcount


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite connections are tuned for several processes at once."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    return make_engine(url)


@lru_cache(maxsize=32)
def session_factory(engine: Engine, write: bool = False) -> sessionmaker[Session]:
    """One sessionmaker per engine and mode, made once."""
    bind = engine.execution_options(sqlite_begin="IMMEDIATE") if write and engine.dialect.name == "sqlite" else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction: committed on success, rolled back on any error."""
    with session_factory(engine, write=True)() as session:
        with session.begin():
            yield session


def sqlite_path_of(engine: Engine) -> str:
    """The file behind a SQLite engine (for tools that open it directly)."""
    return str(engine.url.database)


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "could not serialize" in text or "deadlock" in text


def run_write(engine: Engine, work: Callable[[Session], T], deadline_s: float = WRITE_DEADLINE_S) -> T:
    """Run ``work`` in a write transaction, retrying on lock contention with backoff.

    The busy timeout waits for another writer; retries cover a lock held past it under
    load. The whole wait is bounded by ``deadline_s``: then :class:`DatabaseBusy` says
    so in words, instead of a traceback minutes later.
    """
    start = time.monotonic()
    attempt = 0
    while True:
        try:
            with write_session(engine) as session:
                return work(session)
        except OperationalError as exc:
            if not is_lock_error(exc):
                raise
            waited = time.monotonic() - start
            if waited >= deadline_s:
                raise DatabaseBusy(
                    f"The database is busy (another process held its write lock for {waited:.0f} s); "
                    "nothing was changed. Try again in a moment."
                ) from exc
            time.sleep(min(2.0, 0.05 * 2**attempt, max(0.0, deadline_s - waited)) * (0.5 + random.random()))
            attempt += 1


def skipping_locked(session: Session, query: Select[Any]) -> Select[Any]:
    """A claim's candidate rows: on PostgreSQL rows another claimer has locked are skipped
    (FOR UPDATE SKIP LOCKED), so concurrent claimers take different rows; SQLite serialises
    writers with BEGIN IMMEDIATE and needs nothing."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query
