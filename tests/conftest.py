"""Shared fixtures: the real data folder beside the project, temporary data folders,
and the default model (loaded once per test session)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CXR_SHARED_DATA", ROOT.parent / "shared" / "data"))
NIH_LABELS = SHARED / "nih" / "labels" / "Data_Entry_2017_v2020.csv.gz"
DEFAULT_MODEL = ROOT / "models" / "default"


def shared(*parts: str) -> Path:
    """A path in ../shared/data; the test is skipped with a reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    return path


def real_image_files() -> list[Path]:
    if not SHARED.exists():
        return []
    out = []
    for sub in ("nih/full", "nih/512", "dicom", "other"):
        out.extend(sorted((SHARED / sub).glob("*")))
    return [p for p in out if p.is_file()]


POSTGRES_URL = os.environ.get("CXR_TEST_POSTGRES_URL")


def reset_postgres(url: str) -> None:
    """An empty public schema, so each test starts from migrations like a new site."""
    from sqlalchemy import create_engine, text

    from db import migrate

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate._done.discard(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path, monkeypatch):
    """Settings for a fresh data folder; every engine and verdict test runs on SQLite and,
    where CXR_TEST_POSTGRES_URL names a server (CI starts one), on PostgreSQL."""
    from core.config import load_settings
    from db.session import get_engine

    monkeypatch.setenv("CXR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CXR_MODEL", str(DEFAULT_MODEL))
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("no PostgreSQL server: set CXR_TEST_POSTGRES_URL (.ci/run starts one)")
        get_engine.cache_clear()
        reset_postgres(POSTGRES_URL)
        monkeypatch.setenv("CXR_DATABASE_URL", POSTGRES_URL)
    else:
        monkeypatch.delenv("CXR_DATABASE_URL", raising=False)
    return load_settings()


@pytest.fixture
def db_engine(settings):
    from db.bootstrap import open_database

    engine = open_database(settings)
    yield engine
    engine.dispose()
    if engine.dialect.name == "postgresql":
        from db.session import get_engine

        get_engine.cache_clear()


@pytest.fixture(scope="session")
def inference_engine():
    if not (DEFAULT_MODEL / "model_card.json").exists():
        pytest.skip("models/default is not trained yet")
    from core.inference import InferenceEngine

    return InferenceEngine(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def identity_engine():
    if not (DEFAULT_MODEL / "model_card.json").exists():
        pytest.skip("models/default is not trained yet")
    from core.inference import InferenceEngine

    return InferenceEngine(DEFAULT_MODEL, views=["identity"])

