"""The DICOM node under load, against a real PACS (Debian's Orthanc).

1. Instances per second received and stored: 200 instances of the real CR DICOM (each its
   own SOP Instance UID, 10 per study) sent by C-STORE from a pynetdicom client on one
   association. Baseline in the same run: the same 200 files ingested with
   ``cxr ingest``.
2. Time from the last instance of a study to its SR in Orthanc, median over 20 studies:
   Orthanc sends each study to the receiver (C-STORE), the worker (default model, all TTA
   views) analyses it after the quiet period and its sender C-STOREs the SR and overlays
   back; the clock runs until Orthanc lists the SR.

3. The node's limits (``--limits``, no model needed): the time an allowed C-ECHO waits while
   40 idle sockets are open (baseline: no idle socket, same run); the receiver process's
   peak resident memory while four 300 MB instances (above CXR_MAX_UPLOAD_BYTES) arrive
   at once (baseline: its peak before they are sent); and a 30-minute destination outage,
   simulated by moving the sender's clock, after which every result arrives.

Run: python -m bench.dicom [--studies 20] [--quiet 2] | python -m bench.dicom --limits
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT, bench_settings, require_shared, table

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copies(cr: Path, folder: Path, n: int, per_study: int = 10) -> list[Path]:
    """``n`` copies of the real CR, each a new instance; ``per_study`` share a study."""
    import pydicom
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    out, study = [], None
    for i in range(n):
        ds = pydicom.dcmread(cr)
        if i % per_study == 0:
            study = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"cr_{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def receive_rate(files: list[Path], tmp: Path) -> tuple[float, float]:
    """(instances/s through the receiver, instances/s through cxr ingest)."""
    import pydicom
    from pynetdicom import AE

    from db.bootstrap import open_database
    from services.pacs.receiver import start_receiver

    port = free_port()
    settings = bench_settings(tmp / "rx", dicom_port=port, dicom_allowed_callers=("BENCH",), dicom_quiet_seconds=60)
    engine = open_database(settings)
    server = start_receiver(settings, engine)
    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=settings.dicom_ae_title)
    t = time.perf_counter()
    ok = sum(int(assoc.send_c_store(ds).Status) == 0 for ds in datasets)
    received_s = time.perf_counter() - t
    assoc.release()
    server.shutdown()
    if ok != len(files):
        sys.exit(f"only {ok} of {len(files)} instances were stored")
    env_dir = tmp / "cli"
    env = {"PATH": "/usr/bin:/bin", "CXR_DATA_DIR": str(env_dir), "CXR_EMBEDDED_WORKER": "0"}
    subprocess.run([sys.executable, "-m", "cli", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cli", "ingest", *map(str, files)], cwd=ROOT, env=env, check=True, capture_output=True
    )
    cli_s = time.perf_counter() - t
    return len(files) / received_s, len(files) / cli_s


def round_trip(cr: Path, tmp: Path, studies: int, quiet: float) -> list[float]:
    """Seconds from Orthanc's C-STORE of a study's last instance to the SR listed in Orthanc."""
    from core.inference import Analyzer
    from db.bootstrap import open_database
    from services.pacs.receiver import start_receiver
    from services.pacs.service import PacsResultsService
    from services.worker import Worker

    receiver_port = free_port()
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/start_orthanc.sh"), str(tmp / "orthanc"), "CXR_TRIAGE", str(receiver_port)],
        capture_output=True,
        text=True,
        check=True,
    )
    pid, http, dicom = (int(x) for x in out.stdout.split())

    def rest(path: str, body=None):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(
            f"http://127.0.0.1:{http}{path}", data=data, method="POST" if data is not None else "GET"
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())

    settings = bench_settings(
        tmp / "rt",
        dicom_port=receiver_port,
        dicom_allowed_callers=("ORTHANC",),
        dicom_quiet_seconds=quiet,
        dicom_destination=f"ORTHANC@127.0.0.1:{dicom}",
    )
    engine = open_database(settings)
    server = start_receiver(settings, engine)
    worker = Worker(settings, engine, Analyzer(settings.model_dir), worker_id="bench")
    thread = threading.Thread(target=worker.run_forever, kwargs={"idle_sleep": 0.2}, daemon=True)
    thread.start()
    results = PacsResultsService(engine, settings, "bench", interval_s=0.2).start()
    times = []
    try:
        for path in copies(cr, tmp / "rt_files", studies, per_study=1):
            study = rest("/instances", path.read_bytes())["ParentStudy"]
            t = time.perf_counter()
            rest("/modalities/cxr/store", {"Resources": [study], "Synchronous": True})
            deadline = t + 300
            while time.perf_counter() < deadline:
                tags = [rest(f"/instances/{i['ID']}/simplified-tags") for i in rest(f"/studies/{study}/instances")]
                if any(tag.get("SOPClassUID") == SR_CLASS for tag in tags):
                    times.append(time.perf_counter() - t)
                    break
                time.sleep(0.1)
            else:
                sys.exit(f"no SR for study {study} after 300 s")
    finally:
        worker.stop_event.set()
        thread.join(timeout=60)
        results.stop()
        server.shutdown()
        subprocess.run(["kill", str(pid)], check=False)
    return times


def _receiver_process(tmp: Path, port: int, **env_extra: str) -> subprocess.Popen:
    env = {
        "PATH": "/usr/bin:/bin",
        "CXR_DATA_DIR": str(tmp / "rxproc"),
        "CXR_EMBEDDED_WORKER": "0",
        "CXR_DICOM_PORT": str(port),
        "CXR_DICOM_BIND": "127.0.0.1",
        "CXR_DICOM_ALLOWED_CALLERS": "BENCH",
        **env_extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "receiver"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    for line in proc.stdout:  # log lines, then the receiver says it listens
        if line.startswith(b"receiver "):
            break
    return proc


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def echo_wait(port: int, idle: int, repeat: int = 10) -> float:
    """Median seconds for an allowed caller to associate and C-ECHO while ``idle`` TCP
    connections that never send a PDU are open."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    times = []
    try:
        for _ in range(repeat):
            ae = AE(ae_title="BENCH")
            ae.add_requested_context(Verification)
            t = time.perf_counter()
            assoc = ae.associate("127.0.0.1", port, ae_title="CXR_TRIAGE")
            ok = assoc.is_established and int(assoc.send_c_echo().Status) == 0
            times.append(time.perf_counter() - t if ok else float("inf"))
            if assoc.is_established:
                assoc.release()
    finally:
        for sock in sockets:
            sock.close()
    return statistics.median(times)


def big_instance(path: Path, megabytes: int) -> Path:
    """A DX instance of ``megabytes`` of 16-bit pixels, written once to disk."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    side = int((megabytes * 1024 * 1024 / 2) ** 0.5)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "DX"
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((side, side), np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def memory_under_big_instances(tmp: Path, n: int = 4, megabytes: int = 300) -> tuple[float, float, int]:
    """(receiver peak RSS MB before, after ``n`` instances of ``megabytes`` sent at once,
    how many were stored)."""
    from pynetdicom import AE, _config

    port = free_port()
    proc = _receiver_process(tmp, port)
    try:
        time.sleep(1.0)
        before = _peak_rss_mb(proc.pid)
        files = [big_instance(tmp / f"big{i}.dcm", megabytes) for i in range(n)]
        _config.STORE_SEND_CHUNKED_DATASET = True  # the sender streams from disk too
        stored = []

        def send(path: Path) -> None:
            ae = AE(ae_title="BENCH")
            ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.1.2.1")
            assoc = ae.associate("127.0.0.1", port, ae_title="CXR_TRIAGE")
            try:
                status = assoc.send_c_store(path)
                stored.append(bool(status) and int(status.Status) == 0)
            except Exception:  # noqa: BLE001 - aborted by the receiver
                stored.append(False)
            finally:
                if assoc.is_established:
                    assoc.release()

        threads = [threading.Thread(target=send, args=(f,)) for f in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        after = _peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return before, after, sum(stored)


def outage(tmp: Path, minutes: float = 30.0, results: int = 10) -> tuple[int, int, int]:
    """(results queued, attempts made during the outage, results delivered after it)."""
    from datetime import timedelta

    import numpy as np
    from pydicom.uid import generate_uid
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
    from pynetdicom.sop_class import SecondaryCaptureImageStorage

    from core import storage
    from db.bootstrap import open_database
    from db.outbound import NewOutbound, enqueue, failing, for_study
    from db.schema import Study, utcnow
    from db.session import run_write
    from services.pacs.sender import send_due
    from tests.dicom_factory import make_dicom

    port = free_port()
    settings = bench_settings(tmp / "outage", dicom_destination=f"PACS@127.0.0.1:{port}")
    engine = open_database(settings)
    ids = []
    for _ in range(results):
        data = make_dicom(np.zeros((16, 16), np.uint8), bits_stored=8, modality="OT", StudyInstanceUID=generate_uid())
        sha = storage.sha256_hex(data)

        def work(session, data=data, sha=sha):
            study = Study(sha256=sha, original_name="x", stored_path="x", file_format="dicom", width=16, height=16)
            session.add(study)
            session.flush()
            rel = f"outbound/{study.id}/{sha[:16]}.dcm"
            storage.atomic_write(storage.safe_join(settings.data_dir, rel), data)
            kind = SecondaryCaptureImageStorage
            enqueue(
                session, [NewOutbound(study.id, "sr", generate_uid(), kind, rel, settings.dicom_destination)], "bench"
            )
            return study.id

        ids.append(run_write(engine, work))
    now, end, attempts = utcnow(), utcnow() + timedelta(minutes=minutes), 0
    while now < end:
        attempts += send_due(engine, settings, "bench", limit=100, now=now).failed
        due_next = [i.next_attempt_at for i in failing(engine) if i.status == "pending"]
        now = min(due_next) if due_next else end
    received: list = []
    ae = AE(ae_title="PACS")
    ae.add_supported_context(SecondaryCaptureImageStorage, ALL_TRANSFER_SYNTAXES)
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda event: received.append(1) or 0x0000)],
    )
    try:
        send_due(engine, settings, "bench", limit=100, now=end + timedelta(minutes=10))
    finally:
        server.shutdown()
    delivered = sum(all(o.status == "sent" for o in for_study(engine, sid)) for sid in ids)
    return results, attempts, delivered


def limits(tmp: Path) -> None:
    port = free_port()
    proc = _receiver_process(tmp, port)
    try:
        quiet, busy = echo_wait(port, 0), echo_wait(port, 40)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    table(
        [
            {"idle_sockets_open": 40, "echo_median_s": busy},
            {"idle_sockets_open": "0 (baseline)", "echo_median_s": quiet},
        ],
        "An allowed caller's association + C-ECHO while idle sockets are open",
    )
    before, after, stored = memory_under_big_instances(tmp)
    table(
        [
            {"what": "receiver peak RSS before (baseline)", "MB": before},
            {"what": f"receiver peak RSS after four 300 MB instances at once ({stored} stored)", "MB": after},
        ],
        "Receipt bounded by CXR_MAX_UPLOAD_BYTES (200 MB): aborted while arriving, written to disk",
    )
    queued, attempts, delivered = outage(tmp)
    table(
        [{"results": queued, "failed_attempts_during_outage": attempts, "delivered_after": delivered}],
        "A 30-minute destination outage (the sender's clock moved, not waited for)",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limits", action="store_true", help="only the node's limits (no model, no Orthanc)")
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--quiet", type=float, default=2.0, help="CXR_DICOM_QUIET_SECONDS for the round trip")
    args = parser.parse_args()
    if args.limits:
        with tempfile.TemporaryDirectory() as tmp_name:
            limits(Path(tmp_name))
        return
    cr = require_shared() / "dicom" / "cr_chest.dcm"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = copies(cr, tmp / "files", args.instances)
        ours, cli = receive_rate(files, tmp)
        table(
            [
                {
                    "path": f"C-STORE to the receiver ({args.instances} instances, one association)",
                    "instances_per_s": ours,
                },
                {"path": "baseline: cxr ingest on the same files", "instances_per_s": cli},
            ],
            "Receiving and storing the real CR DICOM (decode, checks, hash, store, audit)",
        )
        times = round_trip(cr, tmp, args.studies, args.quiet)
        table(
            [
                {
                    "studies": len(times),
                    "quiet_period_s": args.quiet,
                    "median_s": statistics.median(times),
                    "min_s": min(times),
                    "max_s": max(times),
                }
            ],
            "Last instance stored by Orthanc's C-STORE -> SR listed in Orthanc (includes the quiet period)",
        )


if __name__ == "__main__":
    main()
