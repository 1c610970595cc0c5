"""The PACS service's loop: consume the worker's outbox of stored DICOM results, build each
study's SR and overlays once and queue them for C-STORE, and send what is due.

A job is claimed with a lease (a consumer that dies leaves it to another after the lease),
and closed in the same transaction that queues its objects, so a study's objects are queued
once however many consumers run. A job that fails (its files cannot be read, the disk is
full) is retried with back-off and given up after ``db.pacs_result_jobs.MAX_ATTEMPTS``,
audited; the study's results stay stored and readable either way.

``cxr pacs`` runs the receiver and this loop in one process (``--no-receiver``: the loop
alone; ``--once``: build and send what is due, then exit). The app runs the loop in a thread
on the embedded default when a destination is configured.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from core.config import Settings, load_settings
from db import outbound, pacs_result_jobs, site_settings
from db.bootstrap import open_database
from db.pacs_result_jobs import ResultJob
from db.session import run_write
from services.pacs.results import build_result_objects
from services.pacs.sender import SendReport, backoff, send_due

log = logging.getLogger("cxr.pacs")
CLAIM_SECONDS = 120.0  # building a study's objects takes well under a second


class ClaimLost(Exception):
    """The job's claim expired and another consumer took it: nothing of ours is queued."""


@dataclass
class RoundReport:
    built: int = 0  # studies whose objects were queued
    objects: int = 0
    failed: int = 0  # studies whose build failed this round (retried later, or given up)
    sent: SendReport | None = None


class PacsResultsService:
    """Consumes the outbox and sends results; ``run_round`` once, or ``start`` a thread."""

    def __init__(self, engine: Engine, settings: Settings, consumer: str | None = None, interval_s: float = 2.0):
        self.engine, self.settings, self.interval_s = engine, settings, interval_s
        self.consumer = consumer or f"pacs:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._announced = False

    def announce(self) -> None:
        """Record the site's destination in the database, so that every worker records a
        DICOM study's result job whatever its own environment says (once per service)."""
        if self.settings.destination is not None and not self._announced:
            site_settings.record(
                self.engine, site_settings.PACS_DESTINATION, self.settings.dicom_destination, self.consumer
            )
            self._announced = True

    def build_due(self, limit: int = 20) -> RoundReport:
        """Build and queue the result objects of up to ``limit`` studies whose results are stored."""
        report = RoundReport()
        for job in pacs_result_jobs.claim(self.engine, self.consumer, limit, CLAIM_SECONDS):
            try:
                report.objects += self._build(job)
                report.built += 1
            except ClaimLost:
                log.warning("study %s: results claim lost to another consumer; left to it", job.study_id)
            except Exception as exc:  # noqa: BLE001 - one study's failure never stops the others
                log.exception("study %s: DICOM results not built", job.study_id)
                report.failed += 1
                error = f"{type(exc).__name__}: {exc}"
                pacs_result_jobs.fail(self.engine, job, self.consumer, error, backoff(job.attempts))
        return report

    def _build(self, job: ResultJob) -> int:
        items = build_result_objects(self.engine, self.settings, job.study_id)

        def work(session) -> None:
            outcome = None if items else pacs_result_jobs.NOTHING_TO_SEND
            if not pacs_result_jobs.close(session, job, self.consumer, outcome):
                raise ClaimLost(job.id)
            outbound.enqueue(session, items, self.consumer)

        run_write(self.engine, work)
        if items:
            log.info("study %s: %d result objects queued for %s", job.study_id, len(items), items[0].destination)
        return len(items)

    def run_round(self) -> RoundReport:
        self.announce()
        report = self.build_due()
        report.sent = send_due(self.engine, self.settings, self.consumer)
        return report

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.run_round()
            except Exception:  # noqa: BLE001 - the database may be busy or away; the next round tries again
                log.exception("PACS results round failed")
            self.stop_event.wait(self.interval_s)

    def start(self) -> PacsResultsService:
        self._thread = threading.Thread(target=self._run, name="cxr-pacs-results", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cxr pacs", description="the PACS service: DICOM receiver, results built and sent to the destination"
    )
    parser.add_argument("--no-receiver", action="store_true", help="build and send results only")
    parser.add_argument("--once", action="store_true", help="build and send what is due now, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    engine = open_database(settings)
    service = PacsResultsService(engine, settings)
    if args.once:
        report = service.run_round()
        sent = report.sent or SendReport()
        print(
            f"built {report.built} studies ({report.objects} objects), {report.failed} failed; "
            f"sent {sent.sent}, {sent.failed} not sent",
            flush=True,
        )
        return 0
    server = None
    if not args.no_receiver:
        from services.pacs.receiver import start_receiver

        try:
            server = start_receiver(settings, engine)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"receiver {settings.dicom_ae_title} on port {settings.dicom_port}", flush=True)
    if settings.destination is None:
        print("no CXR_DICOM_DESTINATION: results are not sent anywhere", flush=True)
    service.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    service.stop()
    if server is not None:
        server.shutdown()
    return 0
