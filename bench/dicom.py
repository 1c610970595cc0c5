"""The DICOM node under load, against a real PACS (Debian's Orthanc).

1. Instances per second received and stored: 200 instances of the real CR DICOM (each its
   own SOP Instance UID, 10 per study) sent by C-STORE from a pynetdicom client on one
   association. Baseline in the same run: the same 200 files ingested with
   ``cxr ingest``.
2. Time from the last instance of a study to its SR in Orthanc, median over 20 studies:
   Orthanc sends each study to the receiver (C-STORE), the worker (default model, all TTA
   views) analyses it after the quiet period and its sender C-STOREs the SR and overlays
   back; the clock runs until Orthanc lists the SR.

Run: python -m bench.dicom [--studies 20] [--quiet 2]
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
    from services.receiver import start_receiver

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
    from services.receiver import start_receiver
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
        server.shutdown()
        subprocess.run(["kill", str(pid)], check=False)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--quiet", type=float, default=2.0, help="CXR_DICOM_QUIET_SECONDS for the round trip")
    args = parser.parse_args()
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
