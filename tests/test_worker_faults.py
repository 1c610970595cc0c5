"""The worker cannot die of one study (issue 10, items 1-3): poison inputs and results,
a full disk, slow batches under short leases, and requeued studies."""

import errno
import time
from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy import func, select

from core import storage
from db import queue
from db.schema import Heatmap, Prediction, Study, StudyScores, WorkerHeartbeat
from services.ingest import ingest_upload
from services.leases import LeaseKeeper
from services.worker import Worker
from tests.conftest import shared


def _ingest(engine, settings, files):
    ids = []
    for f in files:
        result = ingest_upload(engine, settings, f.name, f.read_bytes())[0]
        assert result.status == "accepted", result
        ids.append(result.study_id)
    return ids


def _statuses(engine):
    with engine.connect() as conn:
        return dict(conn.execute(select(Study.id, Study.status)).all())


class _Poisoning:
    """The real engine, but the study at ``bad_index`` of each batch gets NaN output."""

    def __init__(self, real, bad_index=1):
        self.real, self.bad_index = real, bad_index
        self.card, self.labels, self.device, self.views = real.card, real.labels, real.device, real.views
        self.model_dir = real.model_dir

    def analyse(self, images, thresholds=None):
        out = self.real.analyse(images, thresholds)
        if len(out) > self.bad_index:
            bad = out[self.bad_index]
            out[self.bad_index] = replace(bad, probabilities={k: float("nan") for k in bad.probabilities})
        return out


def test_nan_output_fails_one_study_and_the_batch_completes(settings, db_engine, identity_analyzer):
    files = sorted(shared("nih", "small64").glob("*.png"))[:6]
    ids = _ingest(db_engine, settings, files)
    worker = Worker(settings, db_engine, _Poisoning(identity_analyzer), worker_id="w")
    while worker.run_once().claimed:
        pass
    statuses = _statuses(db_engine)
    failed = [i for i in ids if statuses[i] == "failed"]
    assert len(failed) == 1 and sum(s == "done" for s in statuses.values()) == 5
    with db_engine.connect() as conn:
        error = conn.execute(select(Study.error).where(Study.id == failed[0])).scalar_one()
        assert "non-finite" in error
        assert (
            conn.execute(
                select(func.count()).select_from(Prediction).where(Prediction.study_id == failed[0])
            ).scalar_one()
            == 0
        )


def test_full_disk_fails_the_study_not_the_worker(settings, db_engine, identity_analyzer, monkeypatch):
    files = sorted(shared("nih", "small64").glob("*.png"))[10:14]
    _ingest(db_engine, settings, files)
    real_write = storage.atomic_write
    calls = {"n": 0}

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(storage, "atomic_write", flaky)
    worker = Worker(settings, db_engine, identity_analyzer, worker_id="w")
    report = worker.run_once()
    assert report.claimed == 4 and report.done == 3 and report.failed == 1
    statuses = _statuses(db_engine)
    assert list(statuses.values()).count("queued") == 1  # a full disk is retried, not final
    assert "No space left" in worker.last_error
    while worker.run_once().claimed:
        pass
    assert set(_statuses(db_engine).values()) == {"done"}


def test_run_forever_survives_a_failing_batch(settings, db_engine, identity_analyzer, monkeypatch):
    worker = Worker(settings, db_engine, identity_analyzer, worker_id="loop")
    calls = {"n": 0}

    def boom():
        calls["n"] += 1
        if calls["n"] >= 3:
            worker.stop_event.set()
        raise RuntimeError("database went away")

    monkeypatch.setattr(worker, "run_once", boom)
    worker.run_forever(idle_sleep=0.01)
    assert calls["n"] == 3  # the loop went on after the first two failures
    with db_engine.connect() as conn:
        assert conn.execute(select(WorkerHeartbeat.state)).scalar_one() == "stopped"


def test_leases_are_renewed_while_a_batch_runs(settings, db_engine):
    ids = _ingest(db_engine, settings, sorted(shared("nih", "small64").glob("*.png"))[20:22])
    claimed = queue.claim_batch(db_engine, "slow", 8, lease_seconds=1.0, max_attempts=3)
    assert [c.id for c in claimed] == ids
    with LeaseKeeper(db_engine, "slow", ids, lease_seconds=1.0) as keeper:
        deadline = time.monotonic() + 10
        while keeper.renewals < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        # well past the original lease: nobody else may claim the batch
        assert queue.claim_batch(db_engine, "thief", 8, 1.0, 3) == []
    assert keeper.renewals >= 4


def test_requeue_of_a_done_study_replaces_its_results(settings, db_engine, identity_analyzer):
    (sid,) = _ingest(db_engine, settings, sorted(shared("nih", "small64").glob("*.png"))[30:31])
    worker = Worker(settings, db_engine, identity_analyzer, worker_id="w")
    worker.run_once()
    assert queue.requeue(db_engine, sid, "admin")
    report = worker.run_once()
    assert report.done == 1 and _statuses(db_engine)[sid] == "done"
    with db_engine.connect() as conn:
        for table, n in ((Prediction, 15), (StudyScores, 1)):
            assert conn.execute(select(func.count()).select_from(table).where(table.study_id == sid)).scalar_one() == n
        flagged = conn.execute(
            select(func.count()).select_from(Prediction).where(Prediction.study_id == sid, Prediction.flagged.is_(True))
        ).scalar_one()
        paths = conn.execute(select(Heatmap.path).where(Heatmap.study_id == sid)).scalars().all()
    assert len(paths) == flagged  # one overlay per flagged finding, all read from the study's small maps
    maps = [p for p in (settings.data_dir / "heatmaps").rglob("*") if p.is_file()]
    assert [p.name for p in maps] == [storage.CAMS_FILE]
    assert {settings.data_dir / p for p in paths} <= set(maps)


def test_poison_pixels_never_reach_the_queue(settings, db_engine):
    from services.ingest import ingest_upload
    from tests.dicom_factory import make_dicom

    base = np.linspace(0, 4000, 64 * 64).reshape(64, 64)
    poison = {
        "nan slope": make_dicom(base, slope=float("nan"), intercept=0.0),
        "huge slope": make_dicom(base, slope=1e308, intercept=0.0),
        "zero slope": make_dicom(base, slope=0.0, intercept=5.0),
        "nan window": make_dicom(base, window=(float("nan"), float("nan"))),
        "zero window width": make_dicom(base, window=(2000.0, 0.0)),
    }
    for name, data in poison.items():
        result = ingest_upload(db_engine, settings, f"{name}.dcm", data)[0]
        assert result.status == "rejected", (name, result)
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Study)).scalar_one() == 0
    assert (
        not any(settings.data_dir.joinpath("originals").rglob("*.dcm"))
        if (settings.data_dir / "originals").exists()
        else True
    )


def test_concurrent_first_start_migrates_once(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = dict(os.environ, CXR_DATA_DIR=str(tmp_path / "data"))
    env.pop("CXR_DATABASE_URL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli", "migrate"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert all("database at head" in o for o in outs)


@pytest.mark.slow
def test_a_held_write_lock_gives_a_clear_bounded_message(settings, db_engine):
    import sqlite3

    from db import audit
    from db.session import DatabaseBusy, run_write, sqlite_path_of

    if db_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single writer lock")
    holder = sqlite3.connect(sqlite_path_of(db_engine), timeout=1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseBusy, match="Try again"):
            run_write(db_engine, lambda s: audit.record(s, "tick", "t", None), deadline_s=2.0)
        assert time.monotonic() - started < 2.0 + 12.0  # the deadline plus at most one busy wait
    finally:
        holder.execute("ROLLBACK")
        holder.close()
