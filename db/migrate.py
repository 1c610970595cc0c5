"""Bring a database to the latest schema with Alembic (``python -m db.migrate``)."""
from __future__ import annotations

import threading
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
    """Idempotent; cached per process so pages can call it on every run cheaply."""
    with _lock:
        if url in _done:
            return
        command.upgrade(alembic_config(url), "head")
        _done.add(url)


if __name__ == "__main__":
    from core.config import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
