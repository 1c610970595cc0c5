"""A data folder filled by the real engine and the default model from real images."""
from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import SHARED


def populate(data_dir: Path, engine_model, names: list[Path]) -> dict:
    """Ingest ``names`` and run an in-process worker until the queue is empty."""
    from core.config import load_settings
    from core.ingest import ingest_upload
    from core.worker import Worker
    from db.bootstrap import open_database
    from db.users import create_user

    os.environ["CXR_DATA_DIR"] = str(data_dir)
    os.environ.pop("CXR_DATABASE_URL", None)
    settings = load_settings()
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
