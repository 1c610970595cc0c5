"""Queue and workers: real worker processes with the default model over real images."""

import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from db.schema import Prediction, Study, WorkerHeartbeat
from services.ingest import ingest_upload
from tests.conftest import DEFAULT_MODEL, ROOT, settings_env, shared

pytestmark = [
    pytest.mark.slow,  # real worker processes, killed and restarted
    pytest.mark.skipif(not (DEFAULT_MODEL / "model_card.json").exists(), reason="default model not trained"),
]


def _ingest_small(engine, settings, n, start=0):
    files = sorted(shared("nih", "small64").glob("*.png"))[start : start + n]
    assert len(files) == n
    for f in files:
        assert ingest_upload(engine, settings, f.name, f.read_bytes())[0].status == "accepted"


def _worker(settings, *args, lease="5"):
    env = settings_env(settings, CXR_TTA_VIEWS="identity", CXR_LEASE_SECONDS=lease, CXR_BATCH_SIZE="8")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _status_counts(engine):
    with engine.connect() as conn:
        return dict(conn.execute(select(Study.status, func.count()).group_by(Study.status)).all())


def _assert_all_done_once(engine, n):
    with engine.connect() as conn:
        assert _status_counts(engine) == {"done": n}
        per_study = conn.execute(select(Prediction.study_id, func.count()).group_by(Prediction.study_id)).all()
    assert len(per_study) == n and {c for _, c in per_study} == {15}


def test_two_worker_processes_each_study_exactly_once(settings, db_engine):
    _ingest_small(db_engine, settings, 300)
    workers = [_worker(settings, "--once", "--worker-id", f"w{i}") for i in range(2)]
    for w in workers:
        out, _ = w.communicate(timeout=400)
        assert w.returncode == 0, out
    _assert_all_done_once(db_engine, 300)
    with db_engine.connect() as conn:
        processed = dict(conn.execute(select(WorkerHeartbeat.worker_id, WorkerHeartbeat.processed)).all())
    assert sum(processed.values()) == 300, processed  # no study was completed twice
    assert all(v > 0 for v in processed.values()), processed  # both really worked


def test_worker_killed_mid_batch_loses_nothing(settings, db_engine):
    _ingest_small(db_engine, settings, 120, start=300)
    victim = _worker(settings, "--worker-id", "victim")
    deadline = time.time() + 240
    held = []
    while time.time() < deadline:
        counts = _status_counts(db_engine)
        if counts.get("done", 0) >= 24 and counts.get("processing", 0) > 0:
            with db_engine.connect() as conn:
                held = list(conn.execute(select(Study.id).where(Study.lease_owner == "victim")).scalars())
            if held:
                break
        time.sleep(0.05)
    assert held, "the victim never held a batch"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert _status_counts(db_engine).get("processing", 0) > 0  # it died holding leases
    rescuer = _worker(settings, "--once", "--worker-id", "rescuer")
    out, _ = rescuer.communicate(timeout=400)
    assert rescuer.returncode == 0, out
    _assert_all_done_once(db_engine, 120)
    with db_engine.connect() as conn:
        attempts = dict(conn.execute(select(Study.id, Study.attempts).where(Study.id.in_(held))).all())
    assert all(a == 2 for a in attempts.values()), attempts


def test_sigterm_stops_worker_cleanly(settings, db_engine):
    worker = _worker(settings, "--worker-id", "graceful")
    # signal handlers are installed before the loop's first heartbeat: wait for it, not a fixed time
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and worker.poll() is None:
        with db_engine.connect() as conn:
            if conn.execute(select(WorkerHeartbeat.state).where(WorkerHeartbeat.worker_id == "graceful")).first():
                break
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, out
    assert "stopped after" in out


def test_parallel_writer_threads_never_see_locked(settings, db_engine):
    files = sorted(shared("nih", "small64").glob("*.png"))[420:620]
    errors, results = [], []

    def writer(chunk):
        try:
            for f in chunk:
                results.extend(ingest_upload(db_engine, settings, f.name, f.read_bytes(), actor="t"))
        except Exception as exc:  # noqa: BLE001 - any error is a failure here
            errors.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(files[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.status == "accepted" for r in results) == 200
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Study)).scalar_one() == 200
