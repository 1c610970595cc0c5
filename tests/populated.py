"""A data folder filled by the real engine and the default model from real images."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SHARED, make_settings


def populate(data_dir: Path, engine_model, names: list[Path]) -> dict:
    """Ingest ``names`` and run an in-process worker until the queue is empty."""
    from db.bootstrap import open_database
    from db.users import create_user
    from services.ingest import ingest_upload
    from services.worker import Worker

    settings = make_settings(data_dir)
    engine = open_database(settings)
    admin = create_user(engine, "alice", "correct horse battery", "admin")
    reviewer = create_user(engine, "bob", "another long password", "reviewer")
    ids = {}
    for path in names:
        result = ingest_upload(engine, settings, path.name, path.read_bytes(), actor="alice", user_id=admin.id)[0]
        ids[path.name] = result.study_id
    worker = Worker(settings, engine, engine_model, worker_id="test-worker")
    while worker.run_once().claimed:
        pass
    return {"settings": settings, "engine": engine, "admin": admin, "reviewer": reviewer, "ids": ids}


def real_study_files() -> list[Path]:
    files = sorted((SHARED / "nih" / "full").glob("*.png"))
    files += [SHARED / "dicom" / "cr_chest.dcm", SHARED / "other" / "16747_3_1.jpg"]
    return [f for f in files if f.exists()]
