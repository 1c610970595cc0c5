"""Open the configured database at the latest schema, creating the data folder."""

from __future__ import annotations

from sqlalchemy import Engine

from core.config import Settings
from db.migrate import upgrade
from db.session import get_engine


def open_database(settings: Settings) -> Engine:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    return get_engine(settings.database_url)
