"""Runtime configuration read from the environment.

One place decides where data lives, which database and which model are used, and the
limits applied to uploads, so that the app, the worker and the scripts agree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = PROJECT_ROOT / "models" / "default"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Settings:
    """Everything that can differ between sites; build with :func:`load_settings`."""

    data_dir: Path
    database_url: str
    model_dir: Path
    max_upload_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 32
    max_zip_members: int = 2000
    max_zip_total_bytes: int = 2 * 1024 * 1024 * 1024
    lease_seconds: float = 120.0
    max_attempts: int = 3
    batch_size: int = 8
    tta_views: tuple[str, ...] = field(default_factory=tuple)
    overdue_hours: float = 24.0

    @property
    def originals_dir(self) -> Path:
        return self.data_dir / "originals"

    @property
    def previews_dir(self) -> Path:
        return self.data_dir / "previews"

    @property
    def heatmaps_dir(self) -> Path:
        return self.data_dir / "heatmaps"


def sqlite_url(path: Path) -> str:
    """A SQLite URL whose path is quoted: a '#' or '?' in the data folder's name must not
    end the path and start a fragment or a query (the database would land elsewhere)."""
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def load_settings() -> Settings:
    """Read ``CXR_*`` variables; defaults give an embedded SQLite file under ./data."""
    data_dir = Path(os.environ.get("CXR_DATA_DIR", "./data")).resolve()
    url = os.environ.get("CXR_DATABASE_URL") or sqlite_url(data_dir / "cxr.sqlite3")
    model_dir = Path(os.environ.get("CXR_MODEL", str(DEFAULT_MODEL_DIR))).resolve()
    views = tuple(v.strip() for v in os.environ.get("CXR_TTA_VIEWS", "").split(",") if v.strip())
    return Settings(
        data_dir=data_dir,
        database_url=url,
        model_dir=model_dir,
        max_upload_bytes=_env_int("CXR_MAX_UPLOAD_BYTES", 200 * 1024 * 1024),
        max_pixels=_env_int("CXR_MAX_PIXELS", 50_000_000),
        min_side=_env_int("CXR_MIN_SIDE", 32),
        lease_seconds=_env_float("CXR_LEASE_SECONDS", 120.0),
        max_attempts=_env_int("CXR_MAX_ATTEMPTS", 3),
        batch_size=_env_int("CXR_BATCH_SIZE", 8),
        tta_views=views,
        overdue_hours=_env_float("CXR_OVERDUE_HOURS", 24.0),
    )
