"""Database layer: migrations, audit trail, users, queue semantics, verdicts."""

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from core.labels import LABELS
from db import audit, queue
from db.results import store_results
from db.reviews import truth_from_verdict
from db.schema import AuditEvent, Study, User, Verdict, utcnow
from db.session import run_write
from db.users import (
    SignInError,
    authenticate,
    create_first_admin,
    create_user,
    set_active,
)
from tests.conftest import analysed_studies


def _study(session, n: int, status="queued") -> int:
    s = Study(
        sha256=f"{n:064x}",
        original_name=f"s{n}.png",
        stored_path=f"originals/x/{n}.png",
        file_format="png",
        width=64,
        height=64,
        status=status,
    )
    session.add(s)
    session.flush()
    return s.id


def test_sqlite_pragmas_and_schema_at_head(db_engine):
    if db_engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with db_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10000
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0015"


def test_audit_log_is_append_only(db_engine):
    run_write(db_engine, lambda s: audit.record(s, "test", "alice", None, what="x"))
    with pytest.raises(DBAPIError, match="append-only"):
        run_write(db_engine, lambda s: s.execute(update(AuditEvent).values(actor="mallory")))
    with pytest.raises(DBAPIError, match="append-only"):
        run_write(db_engine, lambda s: s.execute(AuditEvent.__table__.delete()))
    with pytest.raises(ValueError):
        run_write(db_engine, lambda s: audit.record(s, "test", "alice", None, password="secret"))


def test_passwords_hashed_rate_limited_and_disabled_users_refused(db_engine):
    user = create_user(db_engine, "alice", "correct horse battery", "admin")
    with db_engine.connect() as conn:
        stored = conn.execute(select(User.password_hash)).scalar_one()
    assert stored.startswith("$argon2") and "correct horse" not in stored
    assert authenticate(db_engine, "alice", "correct horse battery").id == user.id
    for _ in range(5):
        with pytest.raises(SignInError, match="Wrong"):
            authenticate(db_engine, "alice", "wrong")
    with pytest.raises(SignInError, match="Too many"):
        authenticate(db_engine, "alice", "correct horse battery")
    create_user(db_engine, "bob", "another long password")
    set_active(db_engine, "bob", False, actor="alice")
    with pytest.raises(SignInError):
        authenticate(db_engine, "bob", "another long password")
    with pytest.raises(PermissionError):
        create_first_admin(db_engine, "eve", "sneaky password 123")
    with pytest.raises(ValueError, match="at least"):
        create_user(db_engine, "dave", "short")


def _result(study_id: int, labels=("Mass", "No Finding")):
    from db.results import StudyResult

    p = {lab: 0.5 for lab in labels}
    return StudyResult(
        study_id, "m", "v1", tuple(labels), p, {lab: 0.0 for lab in labels}, p, "t", frozenset(), 1, 0.0, 0.0
    )


def test_claim_is_exclusive_fifo_and_leases_expire(db_engine):
    ids = run_write(db_engine, lambda s: [_study(s, i) for i in range(5)])
    a = queue.claim_batch(db_engine, "A", 3, 60, 3)
    b = queue.claim_batch(db_engine, "B", 3, 60, 3)
    assert [c.id for c in a] == ids[:3] and [c.id for c in b] == ids[3:]
    assert queue.claim_batch(db_engine, "C", 3, 60, 3) == []
    run_write(
        db_engine,
        lambda s: s.execute(
            update(Study).where(Study.id == ids[0]).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        ),
    )
    c = queue.claim_batch(db_engine, "C", 3, 60, 3)
    assert [x.id for x in c] == [ids[0]] and c[0].attempts == 2
    # A's late result is refused: C owns the lease now
    assert run_write(db_engine, lambda s: store_results(s, [_result(ids[0])], "A")) == []
    assert run_write(db_engine, lambda s: store_results(s, [_result(ids[0])], "C")) == [ids[0]]


def test_bounded_attempts_then_failed_with_error(db_engine):
    sid = run_write(db_engine, lambda s: _study(s, 99))
    for attempt in range(3):
        claimed = queue.claim_batch(db_engine, f"W{attempt}", 1, 60, 3)
        assert [c.id for c in claimed] == [sid]
        run_write(
            db_engine, lambda s: s.execute(update(Study).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        )
    assert queue.claim_batch(db_engine, "W9", 1, 60, 3) == []
    with db_engine.connect() as conn:
        status, error = conn.execute(select(Study.status, Study.error)).one()
    assert status == "failed" and "3 attempts" in error


def test_mark_error_requeues_until_attempts_run_out(db_engine):
    sid = run_write(db_engine, lambda s: _study(s, 7))
    queue.claim_batch(db_engine, "W", 1, 60, 2)
    assert queue.mark_error(db_engine, sid, "W", "model error", 2) == "queued"
    queue.claim_batch(db_engine, "W", 1, 60, 2)
    assert queue.mark_error(db_engine, sid, "W", "model error", 2) == "failed"


@pytest.mark.parametrize(
    "flagged,verdict,present",
    [(True, "correct", True), (True, "incorrect", False), (False, "correct", False), (False, "missed", True)],
)
def test_verdict_to_truth(flagged, verdict, present):
    assert truth_from_verdict(flagged, verdict) is present


def test_verdict_to_truth_refuses_nonsense():
    with pytest.raises(ValueError):
        truth_from_verdict(True, "missed")
    with pytest.raises(ValueError):
        truth_from_verdict(False, "incorrect")


def _done_study_with_predictions(engine, flagged: set[str]) -> int:
    return analysed_studies(engine, flagged, 1)[0]


def submit_review(engine, sid, reader, verdicts, note=None, marks=None, reads_required=2):
    """A read through the service the screens use; a refusal raises with its message."""
    from dataclasses import replace

    from services.reading import save_read

    settings = replace(_SETTINGS[0], reads_required=reads_required)
    outcome = save_read(engine, settings, reader, sid, verdicts, note, marks)
    if not outcome.saved:
        raise ValueError(outcome.message)
    return outcome


_SETTINGS: list = []


@pytest.fixture(autouse=True)
def _reading_settings(settings):
    _SETTINGS[:] = [settings]


def test_each_reader_keeps_their_own_read_and_reads_once(db_engine):
    alice = create_user(db_engine, "alice", "correct horse battery", "admin")
    bob = create_user(db_engine, "bob", "another long password")
    sid = _done_study_with_predictions(db_engine, {"Effusion"})
    verdicts = {lab: "correct" for lab in LABELS}
    submit_review(db_engine, sid, alice, verdicts, "first read")
    other = dict(verdicts, Effusion="incorrect")
    with pytest.raises(ValueError, match="every label"):
        submit_review(db_engine, sid, bob, {"Effusion": "correct"})
    submit_review(db_engine, sid, bob, other)
    with pytest.raises(ValueError, match="already read"):
        submit_review(db_engine, sid, alice, dict(verdicts, Pneumothorax="missed"))
    with db_engine.connect() as conn:
        rows = conn.execute(select(Verdict.reviewer_id, Verdict.label, Verdict.present)).all()
        actors = conn.execute(
            select(AuditEvent.actor).where(AuditEvent.action == "review_submitted").order_by(AuditEvent.id)
        ).all()
    assert len(rows) == 30  # each reviewer keeps their own 15
    assert {(r.reviewer_id, r.present) for r in rows if r.label == "Effusion"} == {(alice.id, True), (bob.id, False)}
    assert [a.actor for a in actors] == ["alice", "bob"]  # who saved, once each


def test_marks_are_stored_with_present_findings(db_engine):
    from core.verdict_rules import Mark
    from db.reviews import load_study

    alice = create_user(db_engine, "alice", "correct horse battery")
    sid = _done_study_with_predictions(db_engine, {"Effusion"})
    verdicts = dict({lab: "correct" for lab in LABELS}, Pneumothorax="missed", **{"No Finding": "correct"})
    submit_review(db_engine, sid, alice, verdicts, marks={"Effusion": Mark(0.25, 0.75), "Pneumothorax": Mark(0.9, 0.1)})
    case = load_study(db_engine, sid, alice.id)
    assert case.my_marks == {"Effusion": Mark(0.25, 0.75), "Pneumothorax": Mark(0.9, 0.1)}
    with db_engine.connect() as conn:
        detail = conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "review_submitted")).scalar_one()
    assert detail["marks"]["Effusion"] == [0.25, 0.75, None]


def test_a_mark_on_an_image_of_another_study_is_refused(db_engine):
    from core.verdict_rules import Mark
    from db.schema import Instance

    alice = create_user(db_engine, "alice", "correct horse battery")
    sid = _done_study_with_predictions(db_engine, {"Effusion"})

    def images(s):
        other = _study(s, 4321)
        rows = [
            Instance(
                study_id=i, sha256=f"{i:062x}ab", stored_path="x", file_format="png", width=8, height=8, analysed=True
            )
            for i in (sid, other)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]

    own, foreign = run_write(db_engine, images)
    verdicts = {lab: "correct" for lab in LABELS}
    with pytest.raises(ValueError, match="not an image of study"):
        submit_review(db_engine, sid, alice, verdicts, marks={"Effusion": Mark(0.5, 0.5, foreign)})
    submit_review(db_engine, sid, alice, verdicts, marks={"Effusion": Mark(0.5, 0.5, own)})
    with db_engine.connect() as conn:
        assert conn.execute(select(Verdict.mark_image_id).where(Verdict.label == "Effusion")).scalar_one() == own


def test_heatmaps_record_the_image_they_were_computed_on(db_engine):
    from dataclasses import replace

    from db.results import stored_results

    sid = run_write(db_engine, lambda s: _study(s, 555))
    result = replace(
        _result(sid),
        heatmap_files={"Mass": "heatmaps/a.png", "No Finding": "heatmaps/b.png"},
        heatmap_instances={"Mass": 41, "No Finding": 42},
    )
    run_write(db_engine, lambda s: store_results(s, [result], None))
    maps = {h.label: h.instance_id for h in stored_results(db_engine, sid).heatmaps}
    assert maps == {"Mass": 41, "No Finding": 42}


@pytest.mark.parametrize(
    "marks, message",
    [
        ({"Atelectasis": (0.5, 0.5)}, "not a finding marked present"),  # marked absent
        ({"No Finding": (0.5, 0.5)}, "not a finding marked present"),
        ({"Effusion": (1.5, 0.5)}, "fraction of the image"),
        ({"Effusion": (float("nan"), 0.5)}, "fraction of the image"),
    ],
)
def test_a_mark_on_an_absent_finding_or_off_the_image_is_refused(db_engine, marks, message):
    from core.verdict_rules import Mark

    alice = create_user(db_engine, "alice", "correct horse battery")
    sid = _done_study_with_predictions(db_engine, {"Effusion"})
    with pytest.raises(ValueError, match=message):
        placed = {label: Mark(*xy) for label, xy in marks.items()}
        submit_review(db_engine, sid, alice, {lab: "correct" for lab in LABELS}, marks=placed)
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Verdict)).scalar_one() == 0


def test_failed_submission_writes_nothing(db_engine):
    alice = create_user(db_engine, "alice", "correct horse battery")
    sid = _done_study_with_predictions(db_engine, {"Effusion"})
    bad = {lab: "correct" for lab in LABELS}
    bad["Effusion"] = "missed"  # invalid for a flagged finding: raised mid-transaction
    with pytest.raises(ValueError):
        submit_review(db_engine, sid, alice, bad, "note")
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Verdict)).scalar_one() == 0
        assert (
            conn.execute(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "review_submitted")
            ).scalar_one()
            == 0
        )


def test_online_backup_while_writing_and_restore(settings, db_engine, tmp_path):
    import threading

    from db.backup import backup, restore

    if db_engine.dialect.name != "sqlite":
        pytest.skip("online backup is the SQLite default's; PostgreSQL uses pg_dump")
    run_write(db_engine, lambda s: [_study(s, i) for i in range(200)])
    stop = threading.Event()

    def writer():
        i = 1000
        while not stop.is_set():
            run_write(db_engine, lambda s, i=i: audit.record(s, "tick", "w", None, i=i))
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        copy = backup(settings.database_url, tmp_path / "b.sqlite3")
    finally:
        stop.set()
        t.join()
    run_write(db_engine, lambda s: s.execute(Study.__table__.delete()))
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Study)).scalar_one() == 0
    db_engine.dispose()
    restore(settings.database_url, copy)
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Study)).scalar_one() == 200
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_migration_0002_backfills_packed_rows(tmp_path):
    """A database created at 0001 with predictions and verdicts upgrades with packed copies."""
    from alembic import command

    from db.migrate import alembic_config
    from db.packing import unmask, unpack_floats
    from db.schema import StudyScores, VerdictSet
    from db.session import make_engine

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    command.upgrade(alembic_config(url), "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, username, role, active, created_at) VALUES (1, 'a', 'admin', 1, '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO studies (id, sha256, original_name, stored_path, file_format, width, height, status,"
                " priority, attempts, created_at, updated_at, model_version) VALUES (1, 'x', 'a.png', 'p',"
                " 'png', 64, 64, 'done', 0, 1, '2026-01-01', '2026-01-01', 'v')"
            )
        )
        for j, lab in enumerate(LABELS):
            conn.execute(
                text(
                    "INSERT INTO predictions (study_id, label, probability, spread, threshold, flagged, model_name,"
                    " model_version, threshold_version, tta_views, created_at) VALUES (1, :l, :p, 0, 0.5, 0, 'm',"
                    " 'v', 't', 1, '2026-01-01')"
                ),
                {"l": lab, "p": j / 20},
            )
            conn.execute(
                text(
                    "INSERT INTO verdicts (study_id, label, reviewer_id, flagged, verdict, present, created_at,"
                    " updated_at) VALUES (1, :l, 1, 0, :v, :p, '2026-01-01', '2026-01-01')"
                ),
                {"l": lab, "v": "missed" if j == 3 else "correct", "p": j == 3},
            )
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as conn:
        blob, key = conn.execute(select(StudyScores.probabilities, StudyScores.labels)).one()
        mask, vkey = conn.execute(select(VerdictSet.present_mask, VerdictSet.labels)).one()
    engine.dispose()
    assert key == vkey == "|".join(LABELS)  # 0004 records the order these rows were packed in
    probs = unpack_floats([blob], [key], LABELS)
    np_probs = [j / 20 for j in range(15)]
    assert probs[0].tolist() == pytest.approx(np_probs)
    present, known = unmask([mask], [vkey], LABELS)
    assert present[0].tolist() == [j == 3 for j in range(15)] and known.all()


def test_packed_rows_are_read_by_label_name_not_position():
    """A row written under another model's label set is read correctly, and a label it
    lacks is unknown (NaN / not known), never another label's value."""
    from db.packing import label_key, mask_of, pack_floats, unmask, unpack_floats

    old = ("Effusion", "Mass", "No Finding")
    new = ("Mass", "Pneumothorax", "Effusion")
    blob = pack_floats({"Effusion": 0.9, "Mass": 0.2, "No Finding": 0.1}, old)
    blob_new = pack_floats({"Mass": 0.3, "Pneumothorax": 0.8, "Effusion": 0.4}, new)
    values = unpack_floats([blob, blob_new], [label_key(old), label_key(new)], new)
    assert values[0, 0] == pytest.approx(0.2) and np.isnan(values[0, 1]) and values[0, 2] == pytest.approx(0.9)
    assert values[1].tolist() == pytest.approx([0.3, 0.8, 0.4])
    mask = mask_of({"Effusion": True, "Mass": False, "No Finding": True}, old)
    present, known = unmask([mask], [label_key(old)], new)
    assert present[0].tolist() == [False, False, True] and known[0].tolist() == [True, False, True]
    with pytest.raises(ValueError):
        label_key(["a|b"])


@pytest.mark.parametrize("name", ["ali\u202ece", "bob\u200b", "eve\x07", "mal\u2066lory", "ze\u2028d"])
def test_user_names_with_invisible_characters_are_refused(db_engine, name):
    with pytest.raises(ValueError, match="zero-width"):
        create_user(db_engine, name, "correct horse battery")
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 0


def test_password_reset_and_re_enable_end_every_session(db_engine):
    from db.users import current_identity, reset_password, session_epoch

    user = create_user(db_engine, "carol", "correct horse battery")
    before = session_epoch(db_engine, user.id)
    assert current_identity(db_engine, user.id, before) is not None
    reset_password(db_engine, "carol", "a brand new password", "admin")
    assert current_identity(db_engine, user.id, before) is None
    after_reset = session_epoch(db_engine, user.id)
    set_active(db_engine, "carol", False, "admin")
    set_active(db_engine, "carol", True, "admin")
    assert current_identity(db_engine, user.id, after_reset) is None
    assert current_identity(db_engine, user.id, session_epoch(db_engine, user.id)) is not None


def test_features_are_kept_with_results_and_replaced_on_reanalysis(db_engine):
    from dataclasses import replace

    from db.results import stored_features
    from db.schema import Instance

    def setup(s):
        sid = _study(s, 777)
        rows = [
            Instance(
                study_id=sid, sha256=f"{n:064x}", stored_path="x", file_format="png", width=8, height=8, analysed=True
            )
            for n in (90001, 90002)
        ]
        s.add_all(rows)
        s.flush()
        return sid, [r.id for r in rows]

    sid, images = run_write(db_engine, setup)
    feats = {i: (np.arange(1280) / 1280 + k).astype("<f2") for k, i in enumerate(images)}
    result = replace(_result(sid), features={i: f.tobytes() for i, f in feats.items()})
    run_write(db_engine, lambda s: store_results(s, [result], None))
    kept = stored_features(db_engine, "v1")
    assert list(kept.instance_ids) == images and list(kept.study_ids) == [sid, sid]
    assert kept.features.dtype == np.float16 and np.array_equal(kept.features, np.stack(list(feats.values())))
    run_write(
        db_engine, lambda s: store_results(s, [replace(result, features={images[0]: feats[images[0]].tobytes()})], None)
    )
    assert list(stored_features(db_engine, "v1").instance_ids) == [images[0]]
    assert stored_features(db_engine, "other").features.shape == (0, 0)
