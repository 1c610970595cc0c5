"""Results for the PACS survive an outage: retried at a capped rate for 24 hours (the
clock is moved, not waited for), then failed for good, listed for admins and resent.
A real pynetdicom Storage SCP on a loopback port plays the PACS."""

import socket
from datetime import timedelta

import numpy as np
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import SecondaryCaptureImageStorage

from tests.conftest import make_settings
from tests.dicom_factory import make_dicom


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site(tmp_path):
    from db.bootstrap import open_database

    port = _free_port()
    settings = make_settings(tmp_path / "data", dicom_destination=f"PACS@127.0.0.1:{port}")
    engine = open_database(settings)
    yield settings, engine, port
    engine.dispose()


def _queue_result(settings, engine) -> int:
    from core import storage
    from db.outbound import NewOutbound, enqueue
    from db.schema import Study
    from db.session import run_write

    data = make_dicom(np.zeros((16, 16), np.uint8), bits_stored=8, modality="OT", StudyInstanceUID=generate_uid())
    sha = storage.sha256_hex(data)

    def work(session):
        study = Study(sha256=sha, original_name="x", stored_path="x", file_format="dicom", width=16, height=16)
        session.add(study)
        session.flush()
        rel = f"outbound/{study.id}/{sha[:16]}.dcm"
        storage.atomic_write(storage.safe_join(settings.data_dir, rel), data)
        enqueue(
            session,
            [
                NewOutbound(
                    study.id, "sr", generate_uid(), SecondaryCaptureImageStorage, rel, settings.dicom_destination
                )
            ],
            "test",
        )
        return study.id

    return run_write(engine, work)


def _pacs(port: int, received: list):
    ae = AE(ae_title="PACS")
    ae.add_supported_context(SecondaryCaptureImageStorage, ALL_TRANSFER_SYNTAXES)

    def handle(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    return ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle)])


def _advance_through_outage(engine, settings, start, minutes: float):
    """Run the sender at each retry time across an outage of ``minutes``; returns the clock."""
    from db.outbound import for_study
    from db.schema import Outbound  # noqa: F401 - the table the items live in
    from services.pacs.sender import send_due

    now, end = start, start + timedelta(minutes=minutes)
    while now < end:
        send_due(engine, settings, "test", now=now)
        pending = [i for i in for_study(engine, _study(engine)) if i.status == "pending"]
        now = min(i.next_attempt_at for i in pending) if pending else end
    return now


def _study(engine) -> int:
    from sqlalchemy import select

    from db.schema import Outbound

    with engine.connect() as conn:
        return conn.execute(select(Outbound.study_id)).scalars().first()


def test_a_thirty_minute_outage_then_every_result_arrives(site):
    from db.outbound import for_study
    from db.schema import utcnow
    from services.pacs.sender import send_due

    settings, engine, port = site
    sid = _queue_result(settings, engine)
    start = utcnow()
    now = _advance_through_outage(engine, settings, start, minutes=30)
    (item,) = for_study(engine, sid)
    assert item.status == "pending" and item.attempts >= 6 and "no association" in item.last_error
    received: list = []
    server = _pacs(port, received)
    try:
        send_due(engine, settings, "test", now=now + timedelta(minutes=10))
    finally:
        server.shutdown()
    assert [i.status for i in for_study(engine, sid)] == ["sent"] and len(received) == 1


@pytest.mark.slow
def test_after_twenty_four_hours_a_result_is_failed_listed_and_resent(site):
    from db.outbound import for_study
    from db.schema import utcnow
    from services.pacs.outbox import failing_results, resend_results
    from services.pacs.sender import send_due

    settings, engine, port = site
    sid = _queue_result(settings, engine)
    start = utcnow()
    _advance_through_outage(engine, settings, start, minutes=25 * 60)
    (item,) = for_study(engine, sid)
    assert item.status == "failed"
    # capped: about one try every 10 minutes, not a storm, and not given up after 10 minutes
    assert 100 <= item.attempts <= 160
    listed = failing_results(engine)
    assert [(r.id, r.status) for r in listed] == [(item.id, "failed")] and "no association" in listed[0].error
    received: list = []
    server = _pacs(port, received)
    try:
        assert resend_results(engine, [item.id], actor="admin") == 1
        send_due(engine, settings, "test")
    finally:
        server.shutdown()
    assert for_study(engine, sid)[0].status == "sent" and failing_results(engine) == []


def test_cxr_outbox_lists_and_resends(site, capsys, monkeypatch):
    import json

    from cli.main import main
    from db.outbound import for_study
    from db.schema import utcnow
    from tests.conftest import settings_env

    settings, engine, _ = site
    sid = _queue_result(settings, engine)
    _advance_through_outage(engine, settings, utcnow(), minutes=1)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    assert main(["outbox", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["study_id"] for r in rows] == [sid] and rows[0]["status"] == "pending" and rows[0]["attempts"] >= 1
    assert main(["outbox", "resend"]) == 2
    assert main(["outbox", "resend", "--all"]) == 0
    assert "1 result(s) queued again" in capsys.readouterr().out
    assert for_study(engine, sid)[0].status == "pending"


def test_home_warns_and_the_admin_outbox_resends(site):
    from streamlit.testing.v1 import AppTest

    from db.outbound import for_study
    from db.schema import utcnow
    from db.users import create_user
    from tests.conftest import ROOT, app_settings

    settings, engine, _ = site
    sid = _queue_result(settings, engine)
    _advance_through_outage(engine, settings, utcnow(), minutes=1)
    admin = create_user(engine, "root", "correct horse battery", "admin")
    with app_settings(settings):
        home = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=60)
        home.session_state["user_id"] = admin.id
        home.run()
        assert any("1 result(s) for the PACS have not been delivered" in e.value for e in home.error)
        page = AppTest.from_file(str(ROOT / "pages" / "admin.py"), default_timeout=60)
        page.session_state["user_id"] = admin.id
        page.run()
        assert not page.exception
        page.button(key="outbox_resend_all").click().run()
        assert any("1 result(s) queued again" in s.value for s in page.success)
    assert for_study(engine, sid)[0].next_attempt_at <= utcnow()
