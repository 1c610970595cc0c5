"""Shared fixtures: the real data folder beside the project, temporary data folders,
and the default model (loaded once per test session)."""
from __future__ import annotations

import os
from dataclasses import replace
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


@pytest.fixture
def settings(tmp_path, monkeypatch):
    from core.config import load_settings

    monkeypatch.setenv("CXR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CXR_DATABASE_URL", raising=False)
    monkeypatch.setenv("CXR_MODEL", str(DEFAULT_MODEL))
    return load_settings()


@pytest.fixture
def db_engine(settings):
    from db.bootstrap import open_database

    engine = open_database(settings)
    yield engine
    engine.dispose()


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


def with_limits(settings, **kw):
    return replace(settings, **kw)
