"""A DICOM node against a real PACS (Debian's Orthanc, started by scripts/start_orthanc.sh):
studies arrive by C-STORE from Orthanc, instances are grouped by StudyInstanceUID, frontal
views are analysed and lateral ones kept, and the SR and Grad-CAM overlays reach Orthanc
by C-STORE with retries. Also: unknown callers, non-image objects and CT are refused, and
a receiver killed mid-transfer loses nothing it acknowledged."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid
from pynetdicom import AE

from tests.conftest import ROOT, make_settings, settings_env, shared
from tests.dicom_factory import make_dicom

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="Orthanc from Debian")]
CR = "1.2.840.10008.5.1.4.1.1.1"
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.11"}
SC = "1.2.840.10008.5.1.4.1.1.7"
DX = "1.2.840.10008.5.1.4.1.1.1.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


class Orthanc:
    def __init__(self, folder: Path, receiver_port: int) -> None:
        self.folder, self.receiver_port = folder, receiver_port
        self.start()

    def start(self, http: int | None = None, dicom: int | None = None) -> None:
        env = dict(os.environ)
        if http:
            env.update(ORTHANC_HTTP_PORT=str(http), ORTHANC_DICOM_PORT=str(dicom))
        out = subprocess.run(
            [
                "bash",
                str(ROOT / "scripts" / "start_orthanc.sh"),
                str(self.folder),
                "CXR_TRIAGE",
                str(self.receiver_port),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if out.returncode != 0:
            pytest.skip(f"Orthanc could not start: {out.stderr[-500:]}")
        pid, self.http, self.dicom = (int(x) for x in out.stdout.split())
        self.pid = pid

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        wait_until(lambda: not _alive(self.pid), 30, "Orthanc to stop")

    def rest(self, path: str, body: bytes | dict | None = None):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http}{path}", data=data, method="POST" if data is not None else "GET"
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw

    def instances_of(self, study_uid: str) -> list[pydicom.Dataset]:
        found = self.rest("/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}})
        return [pydicom.dcmread(io.BytesIO(self.rest(f"/instances/{i}/file"))) for i in found]


def _alive(pid: int) -> bool:
    """Orthanc is started in the background by the script, so it is not our child (waitpid
    cannot see it): read its state, a zombie counting as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def nih_dicom(name: str, study_uid: str, view: str, accession: str = "ACC1") -> bytes:
    pixels = np.asarray(Image.open(shared("nih", "full", name)).convert("L"))
    return make_dicom(
        pixels.astype(np.uint16) * 16,
        bits_stored=12,
        modality="DX",
        StudyInstanceUID=study_uid,
        SeriesInstanceUID=generate_uid(),
        ViewPosition=view,
        AccessionNumber=accession,
        StudyDate="20261126",
        PatientID="PACS-TEST-1",
        PatientName="Test^Pacs",
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory, identity_analyzer):
    """Orthanc + our receiver (in this process) + a worker that sends results to Orthanc."""
    from db.bootstrap import open_database
    from services.pacs.receiver import start_receiver

    receiver_port = free_port()
    orthanc = Orthanc(tmp_path_factory.mktemp("orthanc"), receiver_port)
    settings = make_settings(
        tmp_path_factory.mktemp("pacs") / "data",
        dicom_port=receiver_port,
        dicom_allowed_callers=("ORTHANC",),
        dicom_quiet_seconds=1.0,
        dicom_destination=f"ORTHANC@127.0.0.1:{orthanc.dicom}",
        tta_views=("identity",),
    )
    engine = open_database(settings)
    server = start_receiver(settings, engine)
    yield {"orthanc": orthanc, "settings": settings, "engine": engine, "analyzer": identity_analyzer}
    server.shutdown()
    if _alive(orthanc.pid):
        orthanc.stop()
    engine.dispose()


def analyse_all(node) -> None:
    from db.queue import queue_counts
    from services.worker import Worker

    worker = Worker(node["settings"], node["engine"], node["analyzer"], worker_id="pacs-test")
    worker.announce_model()

    def drained():
        worker.run_once()
        counts = queue_counts(node["engine"])
        return counts["queued"] == 0 and counts["processing"] == 0

    wait_until(drained, 120, "the queue to drain", interval=0.5)


def pacs_round(node):
    """One round of the PACS service: build the results the worker stored, send what is due."""
    from services.pacs.service import PacsResultsService

    return PacsResultsService(node["engine"], node["settings"], "test").run_round()


def send_via_orthanc(node, files: list[bytes]) -> str:
    orthanc = node["orthanc"]
    ids = [orthanc.rest("/instances", data)["ParentStudy"] for data in files]
    for study in dict.fromkeys(ids):
        orthanc.rest("/modalities/cxr/store", {"Resources": [study], "Synchronous": True})
    return ids[0]


def test_study_from_orthanc_is_grouped_analysed_and_results_return(node):
    from pynetdicom import AE as _AE  # noqa: F401 - the client library is importable

    from db.outbound import for_study
    from db.studies import study_instances
    from db.worklist import WorklistFilter, worklist

    study_uid = generate_uid()
    frontal = nih_dicom("00000001_000.png", study_uid, "PA")
    lateral = nih_dicom("00000013_004.png", study_uid, "LL")
    cr = shared("dicom", "cr_chest.dcm").read_bytes()
    send_via_orthanc(node, [frontal, lateral, cr])
    engine = node["engine"]
    from sqlalchemy import select

    from db.schema import Study

    def received():
        with engine.connect() as conn:
            return conn.execute(select(Study.id).where(Study.study_instance_uid == study_uid)).scalar_one_or_none()

    sid = wait_until(received, 60, "the study to arrive")
    wait_until(lambda: len(study_instances(engine, sid)) == 2, 60, "both instances")
    images = study_instances(engine, sid)
    assert sorted((i.view_position, i.analysed) for i in images) == [("LL", False), ("PA", True)]
    assert "frontal" in next(i.not_analysed_reason for i in images if not i.analysed)
    analyse_all(node)
    wait_until(
        lambda: (
            pacs_round(node).sent is not None
            and all(o.status == "sent" for o in for_study(engine, sid))
            and for_study(engine, sid)
        ),
        60,
        "results sent",
    )
    from db.results import stored_results

    results = stored_results(engine, sid)
    back = [
        ds
        for ds in node["orthanc"].instances_of(study_uid)
        if ds.SOPClassUID in SR_CLASSES | {SC} and ds.get("Manufacturer", "").startswith("cxr-review")
    ]
    reports = [ds for ds in back if ds.SOPClassUID in SR_CLASSES]
    overlays = [ds for ds in back if ds.SOPClassUID == SC]
    assert len(reports) == 1 and len(overlays) == len(results.heatmaps)
    sr = reports[0]
    frontal_uid = next(i.sop_instance_uid for i in images if i.analysed)
    evidence = {
        ref.ReferencedSOPInstanceUID
        for item in sr.CurrentRequestedProcedureEvidenceSequence
        for series in item.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert evidence == {frontal_uid}
    in_sr = _sr_probabilities(sr)
    assert set(in_sr) == {p.label for p in results.predictions}
    for p in results.predictions:
        assert in_sr[p.label] == pytest.approx(p.probability, abs=1e-6)
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500" and "not a diagnosis" in str(sr)
    for ds in overlays:
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and "not for diagnosis" in ds.ImageComments.lower()
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == frontal_uid
    listed = worklist(engine, WorklistFilter(), node["settings"].triage())
    assert sid in set(listed["id"])


def test_two_frontal_images_each_overlay_is_drawn_on_and_cites_its_own_image(node):
    """A study of two frontal images: every overlay references the image its map was
    computed on (the study's maximum per label comes from either image)."""
    from db.outbound import for_study
    from db.results import stored_results
    from db.studies import study_instances

    engine = node["engine"]
    study_uid = generate_uid()
    send_via_orthanc(
        node,
        [
            nih_dicom("00000001_000.png", study_uid, "PA", accession="ACC3"),
            nih_dicom("00000013_004.png", study_uid, "AP", accession="ACC3"),
        ],
    )
    sid = wait_until(lambda: _study_of(engine, study_uid), 60, "the study")
    wait_until(lambda: len(study_instances(engine, sid)) == 2, 60, "both instances")
    analyse_all(node)
    wait_until(
        lambda: pacs_round(node) and all(o.status == "sent" for o in for_study(engine, sid)),
        60,
        "results sent",
    )
    uid_of = {i.id: i.sop_instance_uid for i in study_instances(engine, sid)}
    from db.results import stored_features

    kept = stored_features(engine, stored_results(engine, sid).model_version, [sid])
    assert sorted(kept.instance_ids) == sorted(uid_of) and kept.features.shape[1] > 0  # features of each image
    maps = stored_results(engine, sid).heatmaps
    assert maps and all(h.instance_id in uid_of for h in maps)
    expected = {h.label: uid_of[h.instance_id] for h in maps}
    overlays = [
        ds
        for ds in node["orthanc"].instances_of(study_uid)
        if ds.SOPClassUID == SC and ds.get("Manufacturer", "").startswith("cxr-review")
    ]
    assert len(overlays) == len(maps)
    cited = {_overlay_label(ds, expected): ds.SourceImageSequence[0].ReferencedSOPInstanceUID for ds in overlays}
    assert cited == expected


def _overlay_label(ds, labels) -> str:
    text = " ".join(str(ds.get(k, "")) for k in ("SeriesDescription", "ImageComments", "DerivationDescription"))
    found = [label for label in labels if label in text]
    assert found, text
    return max(found, key=len)


def test_an_instance_of_another_patient_in_the_same_study_is_refused_over_the_wire(node):
    from sqlalchemy import select

    from db.schema import AuditEvent
    from db.studies import study_instances

    study_uid = generate_uid()
    a = pydicom.dcmread(io.BytesIO(nih_dicom("00000001_000.png", study_uid, "PA")))
    b = pydicom.dcmread(io.BytesIO(nih_dicom("00000013_004.png", study_uid, "PA")))
    b.PatientID = "PACS-TEST-OTHER"
    assert _send_as_orthanc(node, a) == 0x0000
    assert _send_as_orthanc(node, b) == 0xC000
    sid = _study_of(node["engine"], study_uid)
    assert [i.sop_instance_uid for i in study_instances(node["engine"], sid)] == [a.SOPInstanceUID]
    with node["engine"].connect() as conn:
        codes = [
            d.get("code")
            for d in conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "upload_rejected")).scalars()
        ]
    assert "patient_conflict" in codes


def _sr_probabilities(sr) -> dict[str, float]:
    """Each finding's probability as a receiving system reads the TID 1500 SR (highdicom)."""
    from core.dicom_results import read_findings

    return {f.label: f.probability for f in read_findings(sr)}


def test_unknown_caller_is_refused_at_association(node):
    ds = pydicom.dcmread(shared("dicom", "cr_chest.dcm"))
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", node["settings"].dicom_port, ae_title="CXR_TRIAGE")
    assert not assoc.is_established and assoc.is_rejected


def _send_as_orthanc(node, ds) -> int:
    ae = AE(ae_title="ORTHANC")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", node["settings"].dicom_port, ae_title="CXR_TRIAGE")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def test_structured_report_and_ct_are_refused_with_a_reason(node, tmp_path):
    from sqlalchemy import select

    from core.dicom_results import LabelResult, structured_report
    from db.schema import AuditEvent

    source = pydicom.dcmread(shared("dicom", "cr_chest.dcm"))
    sr = structured_report([source], [LabelResult("Mass", 0.5, 0.4, True)], "m", "v", True, None)
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    ct_bytes = make_dicom(
        np.full((64, 64), 1000, np.uint16),
        modality="CT",
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
    )
    ct_path = tmp_path / "ct.dcm"
    ct_path.write_bytes(ct_bytes)
    ct = pydicom.dcmread(ct_path)
    ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    assert _send_as_orthanc(node, pydicom.dcmread(path)) == 0xA900
    assert _send_as_orthanc(node, ct) == 0xA900
    with node["engine"].connect() as conn:
        reasons = [
            d["reason"]
            for d in conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "upload_rejected")).scalars()
        ]
    assert sum("is not an image this node reads" in r for r in reasons) >= 2


def test_destination_down_then_up_gets_the_result_by_retry(node):
    from sqlalchemy import update

    from db.outbound import for_study
    from db.schema import Outbound

    orthanc, engine = node["orthanc"], node["engine"]
    study_uid = generate_uid()
    send_via_orthanc(node, [nih_dicom("00000001_000.png", study_uid, "AP", accession="ACC2")])
    http, dicom = orthanc.http, orthanc.dicom
    orthanc.stop()  # the PACS goes down before the results are ready
    wait_until(lambda: _study_of(engine, study_uid), 30, "the study")
    analyse_all(node)  # analysis does not wait for the PACS
    sid = _study_of(engine, study_uid)
    assert pacs_round(node).sent.failed >= 1
    items = for_study(engine, sid)
    assert items and all(i.status == "pending" and i.attempts == 1 and i.last_error for i in items)
    orthanc.start(http, dicom)
    with engine.begin() as conn:  # the back-off has not run out yet: make the retry due now
        conn.execute(update(Outbound).where(Outbound.study_id == sid).values(next_attempt_at=Outbound.created_at))
    wait_until(
        lambda: pacs_round(node) and all(i.status == "sent" for i in for_study(engine, sid)),
        60,
        "the retry to deliver",
    )
    assert any(ds.SOPClassUID in SR_CLASSES for ds in orthanc.instances_of(study_uid))


def _study_of(engine, study_uid: str):
    from sqlalchemy import select

    from db.schema import Study

    with engine.connect() as conn:
        return conn.execute(select(Study.id).where(Study.study_instance_uid == study_uid)).scalar_one_or_none()


def test_receiver_killed_mid_transfer_loses_nothing_acknowledged(tmp_path):
    from db.bootstrap import open_database
    from db.studies import find_instance

    port = free_port()
    settings = make_settings(tmp_path / "data", dicom_port=port, dicom_allowed_callers=("SENDER",))
    engine = open_database(settings)
    env = settings_env(
        settings, CXR_DICOM_PORT=str(port), CXR_DICOM_ALLOWED_CALLERS="SENDER", CXR_DICOM_QUIET_SECONDS="60"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "receiver"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:  # log lines, then the receiver says it listens
        if line.startswith("receiver "):
            break
    pixels = np.asarray(Image.open(shared("nih", "full", "00000001_000.png")).convert("L")).astype(np.uint16) * 16
    acknowledged, killed = [], False
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(DX, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="CXR_TRIAGE")
    assert assoc.is_established
    study_uid = generate_uid()
    for n in range(40):
        path = tmp_path / f"{n}.dcm"
        path.write_bytes(
            make_dicom(
                np.roll(pixels, n, axis=1),
                StudyInstanceUID=study_uid,
                SeriesInstanceUID=generate_uid(),
                InstanceNumber=n + 1,
            )
        )
        ds = pydicom.dcmread(path)
        if n == 12:  # mid-transfer: the process dies without any chance to clean up
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        try:
            status = assoc.send_c_store(ds)
        except Exception:  # noqa: BLE001 - the connection is gone
            break
        if status and int(status.Status) == 0x0000:
            acknowledged.append(ds.SOPInstanceUID)
        if not assoc.is_established:
            break
    proc.wait(timeout=30)
    assert killed and 0 < len(acknowledged) < 40
    missing = [uid for uid in acknowledged if find_instance(engine, uid) is None]
    assert missing == []
