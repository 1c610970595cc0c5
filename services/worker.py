"""The queue worker: claims a batch of studies, decodes their frontal images, runs the model
on them in one batch and stores each study's results (services.study_results).

``cxr worker [--once]`` runs one worker (a GPU machine runs it on its own); the app starts
one in a background thread on the embedded default. SIGTERM and SIGINT finish the current
batch and stop cleanly. Results for the PACS are not this process's work: a DICOM study's
stored results carry a job in the PACS outbox, which the PACS service (``cxr pacs``)
consumes; leases (services.leases) and retraining jobs (services.retraining_jobs) have
their own modules.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from core import storage
from core.analysis import invalid_result
from core.analyzer_protocol import StudyAnalyzer
from core.config import Settings, load_settings
from core.decode import Limits, decode_bytes
from core.errors import RejectedInput
from db import audit, heartbeats, queue
from db.bootstrap import open_database
from db.schema import StudyStatus, utcnow
from db.session import run_write
from db.studies import analysed_instances
from services import shadow_runs
from services.leases import LeaseKeeper
from services.retraining_jobs import RetrainingJobs
from services.shadow_runs import ShadowScorers
from services.study_results import Storing, results_go_to_pacs, store_study, thresholds_in_force

log = logging.getLogger("cxr.worker")
NO_FRONTAL = (
    "No frontal (PA/AP) image in this study: nothing for the model to read. "
    "Its images are kept and shown for reading without the model."
)


@dataclass
class BatchReport:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0


class Worker:
    """One worker; several may run against one database (threads or processes)."""

    def __init__(
        self, settings: Settings, engine: Engine, analyzer: StudyAnalyzer | None, worker_id: str | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.analyzer = analyzer  # None only while the embedded worker loads its model
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_event = threading.Event()
        self.processed = 0
        self.last_error: str | None = None
        self.triage = settings.triage()
        self.jobs = RetrainingJobs(engine, settings, self.worker_id)
        self._shadow = ShadowScorers()

    # ------------------------------------------------------------------ loop
    def announce_model(self) -> None:
        """Audit a model change: the first worker to run a new model version records it."""
        card = self.model.card
        self.triage.check_labels(card.labels)

        def work(session) -> None:
            last = audit.last_detail(session, "model_changed")
            if not last or last.get("version") != card.version or last.get("thresholds") != card.threshold_version:
                audit.record(
                    session,
                    "model_changed",
                    self.worker_id,
                    None,
                    name=card.name,
                    version=card.version,
                    thresholds=card.threshold_version,
                    previous=(last or {}).get("version"),
                )

        run_write(self.engine, work)
        # a changed overdue time or label set re-keys the studies already stored
        queue.rekey_priorities(self.engine, self.triage.rate)

    def run_forever(self, idle_sleep: float = 1.0) -> None:
        self.announce_model()
        self._heartbeat("idle", None)
        self._loop(idle_sleep)
        self._heartbeat("stopped", None)

    @property
    def model(self) -> StudyAnalyzer:
        """The loaded model; asking before it is loaded is a programming error."""
        if self.analyzer is None:
            raise RuntimeError(f"worker {self.worker_id} has no model loaded yet")
        return self.analyzer

    def follow_current_model(self) -> bool:
        """Load the registry's current model when it changed (a promotion or rollback by an
        admin); True when it did. The analysis in flight finishes on the model it began with."""
        from services.retraining import current_model_dir

        wanted = current_model_dir(self.engine, self.settings).resolve()
        if self.analyzer is None or Path(self.analyzer.model_dir) == wanted:
            return False
        from core.runtime import load_analyzer

        log.info("worker %s: the current model is now %s; loading it", self.worker_id, wanted)
        self.analyzer = load_analyzer(wanted, self.settings.tta_views or None, self.settings.runtime)
        self.announce_model()
        return True

    def _loop(self, idle_sleep: float) -> None:
        while not self.stop_event.is_set():
            try:
                self.follow_current_model()
                self.jobs.start_next()
                report = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one batch
                log.exception("worker %s: batch failed", self.worker_id)
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                self._heartbeat("error", None)
                self.stop_event.wait(min(30.0, idle_sleep * 5))
                continue
            if report.claimed == 0:
                self._heartbeat("idle", None)
                self.stop_event.wait(idle_sleep)

    def run_once(self) -> BatchReport:
        """Claim one batch and process it; returns what happened."""
        claimed = queue.claim_batch(
            self.engine,
            self.worker_id,
            self.settings.batch_size,
            self.settings.lease_seconds,
            self.settings.max_attempts,
        )
        report = BatchReport(claimed=len(claimed))
        if not claimed:
            return report
        self._heartbeat("processing", claimed[0].id)
        with LeaseKeeper(self.engine, self.worker_id, [c.id for c in claimed], self.settings.lease_seconds):
            self._process(claimed, report)
        self.processed += report.done
        return report

    def _process(self, claimed: list, report: BatchReport) -> None:
        """Decode every frontal image of each claimed study, analyse them all in one batch,
        combine each study's images (core.study_views) and store; every study ends done
        or failed."""
        limits = Limits(self.settings.max_pixels, self.settings.min_side)
        frontal = analysed_instances(self.engine, [study.id for study in claimed])
        images: list[np.ndarray] = []
        ready = []  # (study, its instance records, position of its first image in ``images``)
        for study in claimed:
            records = frontal[study.id]
            if not records:
                self._fail(study.id, NO_FRONTAL, report, permanent=True)
                continue
            try:
                pixels = [
                    decode_bytes(storage.safe_join(self.settings.data_dir, r.stored_path).read_bytes(), limits).pixels
                    for r in records
                ]
            except (RejectedInput, OSError) as exc:
                permanent = isinstance(exc, RejectedInput)
                self._fail(study.id, f"Cannot read stored file: {exc}", report, permanent=permanent)
                continue
            ready.append((study, records, len(images)))
            images.extend(pixels)
        if not ready:
            return
        thresholds, threshold_version = thresholds_in_force(self.engine, self.model.card)
        how = Storing(
            self.model.card,
            thresholds,
            threshold_version,
            self.triage,
            self.worker_id,
            results_go_to_pacs(self.engine, self.settings),
        )
        try:
            analyses = self.model.analyse(images, thresholds)
        except Exception as exc:  # noqa: BLE001 - a model failure must not leave studies stuck
            log.exception("model failed on a batch of %d images", len(images))
            for study, _, _ in ready:
                self._fail(study.id, f"Model error: {type(exc).__name__}: {exc}", report)
            return
        for study, records, start in ready:
            mine = analyses[start : start + len(records)]
            problem = next((p for p in map(invalid_result, mine) if p), None)
            if problem:
                self._fail(study.id, problem, report, permanent=True)
                continue
            try:
                stored = store_study(self.engine, self.settings.data_dir, how, study, records, mine)
            except Exception as exc:  # noqa: BLE001 - disk full, constraint, database error: this study only
                log.exception("study %s: results not stored", study.id)
                self._fail(study.id, f"Results could not be stored: {type(exc).__name__}: {exc}", report)
                continue
            report.done += int(stored is not None)
            report.lost += int(stored is None)
            if stored is not None:
                self._score_in_shadow(study.id, stored.model_version, stored.features)

    def _fail(self, study_id: int, reason: str, report: BatchReport, permanent: bool = False) -> None:
        """Record a failure and free the lease; a failure to record it is logged, never raised."""
        report.failed += 1
        self.last_error = reason[:500]
        try:
            queue.mark_error(
                self.engine, study_id, self.worker_id, reason, self.settings.max_attempts, permanent=permanent
            )
        except Exception:  # noqa: BLE001 - the lease expires and the study is claimed again
            log.exception("study %s: failure could not be recorded", study_id)

    def _score_in_shadow(self, study_id: int, version: str, features: dict[int, bytes]) -> None:
        """The shadow model's scores for the images just stored (never shown, never triage);
        a failure here is logged and never costs the study its result."""
        try:
            scorer = self._shadow.get(self.engine, version)
            if scorer is not None:
                shadow_runs.record(self.engine, scorer, version, study_id, sorted(features.items()))
        except Exception:  # noqa: BLE001 - the shadow run is an experiment; analysis goes on
            log.exception("study %s: shadow scoring failed", study_id)

    def _heartbeat(self, state: str, study_id: int | None) -> None:
        status = heartbeats.WorkerStatus(
            self.worker_id,
            state,
            study_id,
            self.analyzer.device if self.analyzer is not None else None,
            self.processed,
            self.last_error,
            utcnow(),
        )
        try:
            heartbeats.beat(self.engine, status)
        except Exception:  # a heartbeat is informative only: never stop work for it
            log.debug("heartbeat not written", exc_info=True)


def start_background_worker(settings: Settings, engine: Engine) -> threading.Thread:
    """Start one worker thread in this process (the app does this on the default setup).

    The model loads inside the thread, so the first page is not held up by TensorFlow.
    """

    def run() -> None:
        from core.runtime import load_analyzer

        worker = Worker(settings, engine, analyzer=None)
        worker._heartbeat("starting (loading the model)", None)  # Home shows it is coming
        try:
            from services.retraining import current_model_dir

            worker.analyzer = load_analyzer(
                current_model_dir(engine, settings), settings.tta_views or None, settings.runtime
            )
        except Exception as exc:  # noqa: BLE001 - shown on Home, not a crash of the app
            log.exception("embedded worker: the model could not be loaded")
            worker.last_error = f"the model could not be loaded: {type(exc).__name__}: {exc}"[:500]
            worker._heartbeat("error", None)
            return
        worker.run_forever()

    thread = threading.Thread(target=run, name="cxr-worker", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr worker")
    parser.add_argument("--once", action="store_true", help="process until the queue is empty, then exit")
    parser.add_argument("--worker-id", default=None)
    args = parser.parse_args(argv)
    settings = load_settings()
    from core.runtime import load_analyzer  # the engine loads only where a model runs

    engine = open_database(settings)
    from services.retraining import current_model_dir

    analyzer = load_analyzer(current_model_dir(engine, settings), settings.tta_views or None, settings.runtime)
    worker = Worker(settings, engine, analyzer, args.worker_id)
    print(
        f"worker {worker.worker_id}: model {analyzer.card.name} {analyzer.card.version} on {analyzer.device}, "
        f"{len(analyzer.views)} TTA views",
        flush=True,
    )

    def stop(signum, _frame) -> None:
        print(f"signal {signum}: finishing the current batch", flush=True)
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.once:
        worker.announce_model()
        while not worker.stop_event.is_set():
            worker.follow_current_model()
            report = worker.run_once()
            if report.claimed == 0:
                counts = queue.queue_counts(engine)
                if counts[StudyStatus.PROCESSING] == 0 and counts[StudyStatus.QUEUED] == 0:
                    break
                worker.stop_event.wait(1.0)  # others' leases may expire, a quiet period may end
        worker._heartbeat("stopped", None)
    else:
        worker.run_forever()
    counts = queue.queue_counts(engine)
    print(f"worker {worker.worker_id} stopped after {worker.processed} studies; queue {counts}", flush=True)
    return 0
