"""The DICOM receiver as a network node: who may associate (allow-list by title and
address, the called AE title, caps), idle sockets that cannot block it, and instances
refused before they are stored when their class, UIDs or modality are wrong. A real
pynetdicom Storage SCP on a loopback port, real pynetdicom callers; no model needed."""

import io
import socket
import time

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from sqlalchemy import select

from core.dicom_policy import Refusal, association_refusal, instance_problem, parse_allow_list
from tests.conftest import make_settings
from tests.dicom_factory import DIGITAL_XRAY, make_dicom

CR = "1.2.840.10008.5.1.4.1.1.1"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver(tmp_path):
    from db.bootstrap import open_database
    from services.pacs.receiver import start_receiver

    port = _free_port()
    settings = make_settings(
        tmp_path / "data",
        dicom_port=port,
        dicom_bind_address="127.0.0.1",
        dicom_allowed_callers=("LOCAL@127.0.0.0/8", "FARAWAY@10.9.9.9"),
        dicom_max_per_caller=2,
        dicom_max_associations=3,
        dicom_acse_timeout=2.0,
        dicom_quiet_seconds=60.0,
    )
    engine = open_database(settings)
    server = start_receiver(settings, engine)
    yield {"settings": settings, "engine": engine, "port": port}
    server.shutdown()
    engine.dispose()


def _associate(port: int, calling: str, called: str = "CXR_TRIAGE", context=Verification, syntax=None):
    ae = AE(ae_title=calling)
    ae.acse_timeout = 10
    if syntax:
        ae.add_requested_context(context, syntax)
    else:
        ae.add_requested_context(context)
    return ae.associate("127.0.0.1", port, ae_title=called)


def _refusals(engine) -> list[dict]:
    from db.schema import AuditEvent

    with engine.connect() as conn:
        return list(conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "association_refused")).scalars())


def test_allow_list_entries_parse_and_match_title_and_address():
    rules = parse_allow_list(["ORTHANC@10.0.0.7", "MOD@10.1.0.0/16", "LEGACY"])
    args = dict(own_title="CXR", called="CXR", established_from_caller=0, established_total=0)
    caps = dict(max_per_caller=2, max_total=3)

    def refusal(calling, address, **kw):
        return association_refusal(rules, calling=calling, address=address, **(args | kw), **caps)

    assert refusal("ORTHANC", "10.0.0.7") is None
    assert refusal("ORTHANC", "10.0.0.8") is Refusal.WRONG_ADDRESS
    assert refusal("MOD", "10.1.200.3") is None and refusal("MOD", "10.2.0.1") is Refusal.WRONG_ADDRESS
    assert refusal("LEGACY", "192.0.2.1") is None  # a bare title keeps its meaning: any address
    assert refusal("orthanc", "10.0.0.7") is Refusal.UNKNOWN_CALLER  # exact, case included
    assert refusal("ORTHANC", "10.0.0.7", called="OTHER") is Refusal.WRONG_CALLED
    assert refusal("ORTHANC", "10.0.0.7", established_from_caller=2) is Refusal.TOO_MANY_FROM_CALLER
    assert refusal("ORTHANC", "10.0.0.7", established_total=3) is Refusal.TOO_MANY
    for bad in ("", "@10.0.0.1", "TOO_LONG_A_TITLE_X", "X@not-an-address"):
        with pytest.raises(ValueError):
            parse_allow_list([bad])


def _dataset(**changes) -> pydicom.Dataset:
    pixels = (np.random.default_rng(0).random((64, 64)) * 4000).astype(np.uint16)
    ds = pydicom.dcmread(
        io.BytesIO(make_dicom(pixels, StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid()))
    )
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def test_instance_checks_refuse_wrong_class_uids_and_modality():
    assert instance_problem(DIGITAL_XRAY, _dataset()) is None
    assert "data set says" in instance_problem(COMPREHENSIVE_SR, _dataset())
    assert "not an image" in instance_problem(COMPREHENSIVE_SR, _dataset(SOPClassUID=COMPREHENSIVE_SR))
    assert "Modality is missing" in instance_problem(DIGITAL_XRAY, _dataset(Modality=None))
    assert "not CR or DX" in instance_problem(DIGITAL_XRAY, _dataset(Modality="OT"))
    assert "SOPInstanceUID" in instance_problem(DIGITAL_XRAY, _dataset(SOPInstanceUID="1.2.3.4.05"))
    assert "StudyInstanceUID" in instance_problem(DIGITAL_XRAY, _dataset(StudyInstanceUID=None))


@pytest.mark.slow  # a real receiver on a loopback port
def test_titles_addresses_and_the_called_title_are_checked_and_refusals_audited(receiver):
    port, engine = receiver["port"], receiver["engine"]
    ok = _associate(port, "LOCAL")
    assert ok.is_established
    ok.release()
    for calling, called in (("STRANGER", "CXR_TRIAGE"), ("FARAWAY", "CXR_TRIAGE"), ("LOCAL", "SOMEONE_ELSE")):
        assoc = _associate(port, calling, called)
        assert assoc.is_rejected, (calling, called)
    refused = _refusals(engine)
    assert [(r["calling"], r["reason"]) for r in refused] == [
        ("STRANGER", str(Refusal.UNKNOWN_CALLER)),
        ("FARAWAY", str(Refusal.WRONG_ADDRESS)),
        ("LOCAL", str(Refusal.WRONG_CALLED)),
    ]
    assert all(r["address"] == "127.0.0.1" for r in refused)


@pytest.mark.slow  # a real receiver on a loopback port
def test_a_caller_is_served_while_forty_idle_sockets_are_open_and_caps_hold(receiver):
    port = receiver["port"]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        started = time.monotonic()
        assoc = _associate(port, "LOCAL")
        assert assoc.is_established
        assert int(assoc.send_c_echo().Status) == 0x0000
        waited = time.monotonic() - started
        second = _associate(port, "LOCAL")
        assert second.is_established
        third = _associate(port, "LOCAL")  # over the per-caller cap of 2
        assert third.is_rejected
        assoc.release()
        second.release()
        assert waited < 2.0
    finally:
        for s in idle:
            s.close()
    # idle sockets are closed by the node after the ACSE timeout
    probe = socket.create_connection(("127.0.0.1", port))
    probe.settimeout(10)
    started = time.monotonic()
    assert probe.recv(1) == b""  # closed by the receiver, not by us
    assert time.monotonic() - started < 6
    probe.close()


def _store(port: int, ds: pydicom.Dataset, context: str) -> int:
    assoc = _associate(port, "LOCAL", context=context, syntax="1.2.840.10008.1.2.1")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


@pytest.mark.slow  # a real receiver on a loopback port
def test_instances_with_a_wrong_class_uid_or_modality_are_refused_before_storage(receiver):
    from db.schema import AuditEvent, Instance

    port, engine = receiver["port"], receiver["engine"]
    sr_claim = _dataset(SOPClassUID=COMPREHENSIVE_SR)
    sr_claim.file_meta.MediaStorageSOPClassUID = COMPREHENSIVE_SR
    assert _store(port, sr_claim, COMPREHENSIVE_SR) == 0xA900  # a CR image sent under the SR class
    assert _store(port, _dataset(Modality=None), DIGITAL_XRAY) == 0xA900
    assert _store(port, _dataset(StudyInstanceUID="1.2.3.4.05"), DIGITAL_XRAY) == 0xA900
    good = _dataset()
    assert _store(port, good, DIGITAL_XRAY) == 0x0000
    with engine.connect() as conn:
        stored = conn.execute(select(Instance.sop_instance_uid)).scalars().all()
        names = conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "dicom_received")).scalars().all()
        refused = conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "upload_rejected")).scalars()
        reasons = [r["reason"] for r in refused]
    assert stored == [good.SOPInstanceUID]
    assert len(reasons) == 3 and any("Modality is missing" in r for r in reasons)
    assert names[0]["name"].startswith("dicom-") and good.SOPInstanceUID not in names[0]["name"]


@pytest.mark.slow  # a real receiver on a loopback port
def test_an_instance_growing_past_the_limit_is_aborted_while_it_arrives(tmp_path):
    """The upload limit holds on the wire: the association is aborted part-way, nothing is
    stored, the refusal is audited, and the partial file is gone."""
    import tempfile

    from db.bootstrap import open_database
    from db.schema import AuditEvent, Instance
    from services.pacs.receiver import start_receiver

    port = _free_port()
    settings = make_settings(
        tmp_path / "data",
        dicom_port=port,
        dicom_bind_address="127.0.0.1",
        dicom_allowed_callers=("LOCAL",),
        max_upload_bytes=1_500_000,
    )
    engine = open_database(settings)
    server = start_receiver(settings, engine)
    before = set(__import__("pathlib").Path(tempfile.gettempdir()).glob("*.dcm"))
    try:
        pixels = (np.random.default_rng(1).random((2048, 2048)) * 4000).astype(np.uint16)  # 8 MB
        big = pydicom.dcmread(
            io.BytesIO(make_dicom(pixels, StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid()))
        )
        assoc = _associate(port, "LOCAL", context=DIGITAL_XRAY, syntax="1.2.840.10008.1.2.1")
        assert assoc.is_established
        try:
            status = assoc.send_c_store(big)
        except Exception:  # noqa: BLE001 - the peer aborted mid-send
            status = None
        assert not status or int(getattr(status, "Status", 0xFFFF)) != 0x0000
        deadline = time.monotonic() + 10
        while assoc.is_established and time.monotonic() < deadline:  # the A-ABORT reaches the sender
            time.sleep(0.05)
        assert assoc.is_aborted and not assoc.is_established
        small = _dataset()
        assert _store(port, small, DIGITAL_XRAY) == 0x0000  # the node goes on serving
    finally:
        server.shutdown()
    with engine.connect() as conn:
        stored = conn.execute(select(Instance.sop_instance_uid)).scalars().all()
        refused = conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "upload_rejected")).scalars()
        codes = [d["code"] for d in refused]
    assert stored == [small.SOPInstanceUID] and codes == ["too_large"]
    assert set(__import__("pathlib").Path(tempfile.gettempdir()).glob("*.dcm")) - before == set()
    engine.dispose()
