"""Bring a database to the latest schema with Alembic (``cxr migrate``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_lock = threading.Lock()
_done: set[str] = set()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Idempotent; cached per process so pages can call it on every run cheaply.

    Safe when several processes start at once on an empty data folder (the app, workers,
    ``cxr migrate``): one migrates under a cross-process lock (a file lock
    beside the SQLite file, an advisory lock on PostgreSQL); the others wait for it,
    then find the schema at head and go on.
    """
    with _lock:
        if url in _done:
            return
        with _migration_lock(url):
            command.upgrade(alembic_config(url), "head")
        _done.add(url)


MIGRATION_LOCK_KEY = 7_031_942_117  # any fixed 64-bit number, the same in every process


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        import fcntl

        lock_path = Path(parsed.database).with_name(Path(parsed.database).name + ".migrate-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        finally:
            engine.dispose()
        return
    yield


def main(argv: list[str] | None = None) -> int:
    """``cxr migrate``: bring the configured database to the latest schema."""
    import argparse

    from core.config import load_settings

    argparse.ArgumentParser(prog="cxr migrate", description="Upgrade the database to the latest schema.").parse_args(
        argv
    )
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
    return 0
