"""Sign-in, first run, backup, audit and triage under attack or bad luck (issue 10,
items 11-17): each test is named for the item it pins down."""

import sqlite3
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select, text

from core import metrics
from core.config import DEFAULT_TRIAGE_WEIGHTS
from core.labels import LABELS
from core.triage import TriagePolicy
from db import audit
from db.backup import BackupError, backup, restore
from db.schema import AuditEvent, User
from db.session import run_write
from db.users import (
    MAX_FAILURES,
    SignInError,
    authenticate,
    create_first_admin,
    create_user,
)
from services.ratelimit import SlidingWindowLimiter


# ---------------------------------------------------------------- item 11
def test_password_check_holds_no_write_lock(db_engine, monkeypatch):
    from db import users

    create_user(db_engine, "alice", "correct horse battery")
    wrote = []
    real_verify = users._hasher.verify

    def verify_while_someone_writes(hashed, password):
        # another writer must get through while argon2 runs
        t = threading.Thread(
            target=lambda: wrote.append(
                run_write(db_engine, lambda s: audit.record(s, "tick", "other", None) and True, deadline_s=3)
            )
        )
        t.start()
        t.join(timeout=10)
        return real_verify(hashed, password)

    class Hasher:  # the real hasher, with a concurrent writer during verification
        verify = staticmethod(verify_while_someone_writes)

        def __getattr__(self, name):
            return getattr(real_hasher, name)

    real_hasher = users._hasher
    monkeypatch.setattr(users, "_hasher", Hasher())
    assert authenticate(db_engine, "alice", "correct horse battery").username == "alice"
    assert wrote == [True]


def test_spray_is_bounded_in_the_audit(db_engine):
    long_name = "x" * 100_000
    for _ in range(MAX_FAILURES + 5):
        with pytest.raises(SignInError):
            authenticate(db_engine, long_name, "wrong password")
    with db_engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.actor, AuditEvent.detail).where(AuditEvent.action == "sign_in_failed")
        ).all()
    assert len(rows) == MAX_FAILURES  # none after the lock
    assert all(len(r.actor) == 80 and len(r.detail["username"]) == 80 for r in rows)
    assert rows[-1].detail["locked"] is True


def test_sign_in_attempts_are_limited_per_client():
    now = [0.0]
    limiter = SlidingWindowLimiter(3, 60, clock=lambda: now[0])
    assert [limiter.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("10.0.0.2")
    now[0] = 61.0
    assert limiter.allow("10.0.0.1")


# ---------------------------------------------------------------- item 12
def test_only_one_first_administrator_can_be_created(db_engine):
    outcomes = []

    def attempt(i):
        try:
            create_first_admin(db_engine, f"admin{i}", "a long enough password")
            outcomes.append("created")
        except PermissionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created", "refused", "refused", "refused"]
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 1


# ---------------------------------------------------------------- item 13
def _sqlite_only(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("backup and restore are the SQLite default's; PostgreSQL uses pg_dump")


def test_restore_refuses_what_is_not_a_backup(settings, db_engine, tmp_path):
    _sqlite_only(db_engine)
    create_user(db_engine, "alice", "correct horse battery")
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    for bad, why in (
        (tmp_path / "mistyped.sqlite3", "does not exist"),
        (empty, "not a SQLite"),
        (other, "not a database of this application"),
    ):
        with pytest.raises(BackupError, match=why):
            restore(settings.database_url, bad)
    assert not (tmp_path / "mistyped.sqlite3").exists()  # nothing was created by looking
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 1


def test_restore_keeps_the_replaced_database(settings, db_engine, tmp_path):
    _sqlite_only(db_engine)
    create_user(db_engine, "alice", "correct horse battery")
    copy = backup(settings.database_url, tmp_path / "b.sqlite3")
    create_user(db_engine, "bob", "another long password")
    db_engine.dispose()
    kept = restore(settings.database_url, copy)
    assert kept is not None and kept.exists()
    with sqlite3.connect(kept) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 2
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 1


def test_data_folder_with_hash_and_question_mark(tmp_path, monkeypatch):
    from core.config import load_settings
    from db.bootstrap import open_database

    folder = tmp_path / "site #1?x=y"
    # the environment is the interface under test here: load_settings builds the URL
    monkeypatch.setenv("CXR_DATA_DIR", str(folder))
    monkeypatch.delenv("CXR_DATABASE_URL", raising=False)
    cfg = load_settings()
    engine = open_database(cfg)
    create_user(engine, "alice", "correct horse battery")
    assert (folder / "cxr.sqlite3").is_file()  # the database is inside the data folder
    copy = backup(cfg.database_url, folder / "backups" / "b.sqlite3")
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
    engine.dispose()


# ---------------------------------------------------------------- item 14
def test_audit_rows_cannot_be_replaced_or_truncated(db_engine):
    run_write(db_engine, lambda s: audit.record(s, "upload", "alice", None, name="a.png"))
    with db_engine.connect() as conn:
        first = conn.execute(select(AuditEvent.id)).scalar_one()
    statement = (
        "INSERT OR REPLACE INTO audit_log (id, at, actor, action) VALUES (:i, '2026-01-01', 'x', 'forged')"
        if db_engine.dialect.name == "sqlite"
        else "TRUNCATE audit_log"
    )
    with pytest.raises(Exception, match="append-only"):
        with db_engine.begin() as conn:
            conn.execute(text(statement), {"i": first})
    with db_engine.connect() as conn:
        assert conn.execute(select(AuditEvent.action)).scalars().all() == ["upload"]


# ---------------------------------------------------------------- item 15
def test_live_panels_recheck_the_user():
    import inspect

    from dashboard import widgets

    for fragment in (widgets.queue_and_workers, widgets.queue_progress):
        source = inspect.getsource(fragment)
        assert source.index("require_user()") < source.index("queue_counts(engine)")


# ---------------------------------------------------------------- item 16
probabilities = st.lists(st.floats(0, 1), min_size=len(LABELS), max_size=len(LABELS))


@hsettings(max_examples=300, deadline=None)
@given(probabilities, probabilities, st.floats(0.5, 200), st.floats(0, 500), st.floats(0, 1))
def test_overdue_outranks_any_fresh_study(p_old, p_new, overdue, extra_hours, threshold):
    from datetime import datetime, timedelta

    thresholds = {lab: threshold for lab in LABELS}
    policy = TriagePolicy(DEFAULT_TRIAGE_WEIGHTS, overdue)
    now = datetime(2026, 11, 26, 12, 0)
    old = policy.key(
        policy.suspicion(dict(zip(LABELS, p_old)), thresholds), now - timedelta(hours=overdue + extra_hours)
    )
    new = policy.key(policy.suspicion(dict(zip(LABELS, p_new)), thresholds), now)
    assert old > new
    assert policy.current(new, now) == pytest.approx(policy.suspicion(dict(zip(LABELS, p_new)), thresholds), abs=1e-6)
    assert policy.suspicion(dict(zip(LABELS, p_new)), thresholds) <= policy.max_suspicion + 1e-9


def test_priority_column_is_written_and_ordered_in_sql(settings, db_engine, identity_analyzer):
    from db.schema import Study
    from db.worklist import WorklistFilter, worklist
    from services.worker import Worker
    from tests.conftest import shared
    from tests.test_worker_faults import _ingest

    _ingest(db_engine, settings, sorted(shared("nih", "small64").glob("*.png"))[40:46])
    worker = Worker(settings, db_engine, identity_analyzer, worker_id="w")
    while worker.run_once().claimed:
        pass
    with db_engine.connect() as conn:
        keys = dict(conn.execute(select(Study.id, Study.priority)).all())
    assert len(set(keys.values())) == len(keys)  # written per study, not the old constant 0
    df = worklist(db_engine, WorklistFilter(), settings.triage())
    assert list(df["id"]) == sorted(keys, key=lambda i: -keys[i])


# ---------------------------------------------------------------- item 17
labels_and_scores = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.booleans(), min_size=n, max_size=n), st.lists(st.floats(0, 1), min_size=n, max_size=n)
    )
)


@hsettings(max_examples=300, deadline=None)
@given(labels_and_scores)
def test_metric_guards_match_scikit_learn(data):
    y, s = np.array(data[0]), np.array(data[1])
    if y.all() or not y.any():
        assert np.isnan(metrics.auc(y, s))
        assert metrics.threshold_youden(y, s) is None
        assert np.isnan(metrics.auc_ci(y, s, n_boot=20).value)
    else:
        assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s))
        assert metrics.threshold_youden(y, s) is not None
