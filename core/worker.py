"""The queue worker: claims studies, runs the model, stores results in one transaction.

``python -m core.worker [--once]`` runs one worker (a GPU machine runs it on its own);
the app starts one in a background thread on the embedded default. SIGTERM and SIGINT
finish the current batch and stop cleanly.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, select

from core import storage
from core.config import Settings, load_settings
from core.decode import Limits, decode_bytes
from core.errors import RejectedInput
from core.pixel_transforms import to_uint8
from core.triage import priority_key, suspicion, waiting_rate
from db import queue
from db.packing import pack_floats
from db.schema import Heatmap, Prediction, StudyScores, StudyStatus, ThresholdSet, WorkerHeartbeat, utcnow
from db.session import run_write

CAMS_FILE = "cams.npz"
log = logging.getLogger("cxr.worker")


class LeaseLost(Exception):
    """Our lease expired and another worker owns the study: our result must not land."""


@dataclass
class BatchReport:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0


def active_thresholds(engine: Engine, card) -> tuple[dict[str, float], str]:
    """The admin-saved threshold set for this model if any, else the card's own."""
    with engine.connect() as conn:
        row = conn.execute(
            select(ThresholdSet.thresholds, ThresholdSet.version)
            .where(ThresholdSet.model_version == card.version, ThresholdSet.active.is_(True))
            .order_by(ThresholdSet.id.desc()).limit(1)
        ).first()
    if row:
        return {k: float(v) for k, v in row[0].items()}, row[1]
    return dict(card.thresholds), card.threshold_version


class Worker:
    """One worker; several may run against one database (threads or processes)."""

    def __init__(self, settings: Settings, engine: Engine, analyzer, worker_id: str | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.analyzer = analyzer
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_event = threading.Event()
        self.processed = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ loop
    def announce_model(self) -> None:
        """Audit a model change: the first worker to run a new model version records it."""
        card = self.analyzer.card
        from db import audit
        from db.schema import AuditEvent

        def work(session) -> None:
            last = session.execute(select(AuditEvent.detail).where(AuditEvent.action == "model_changed")
                                   .order_by(AuditEvent.id.desc()).limit(1)).scalar_one_or_none()
            if not last or last.get("version") != card.version or last.get("thresholds") != card.threshold_version:
                audit.record(session, "model_changed", self.worker_id, None, name=card.name, version=card.version,
                             thresholds=card.threshold_version, previous=(last or {}).get("version"))

        run_write(self.engine, work)
        # a changed overdue time or label set re-keys the studies already stored
        queue.rekey_priorities(self.engine, waiting_rate(self.settings.overdue_hours, card.labels))

    def run_forever(self, idle_sleep: float = 1.0) -> None:
        self.announce_model()
        self._heartbeat("idle", None)
        while not self.stop_event.is_set():
            try:
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
        self._heartbeat("stopped", None)

    def run_once(self) -> BatchReport:
        """Claim one batch and process it; returns what happened."""
        claimed = queue.claim_batch(self.engine, self.worker_id, self.settings.batch_size,
                                    self.settings.lease_seconds, self.settings.max_attempts)
        report = BatchReport(claimed=len(claimed))
        if not claimed:
            return report
        self._heartbeat("processing", claimed[0].id)
        with LeaseKeeper(self.engine, self.worker_id, [c.id for c in claimed], self.settings.lease_seconds):
            self._process(claimed, report)
        self.processed += report.done
        return report

    def _process(self, claimed: list, report: BatchReport) -> None:
        """Decode, analyse and store one claimed batch; every study ends done or failed."""
        images, ready = [], []
        for study in claimed:
            try:
                path = storage.safe_join(self.settings.data_dir, study.stored_path)
                decoded = decode_bytes(path.read_bytes(), Limits(self.settings.max_pixels, self.settings.min_side))
            except (RejectedInput, OSError) as exc:
                self._fail(study.id, f"Cannot read stored file: {exc}", report, permanent=isinstance(exc, RejectedInput))
                continue
            images.append(decoded.pixels)
            ready.append(study)
        if not ready:
            return
        thresholds, threshold_version = active_thresholds(self.engine, self.analyzer.card)
        try:
            analyses = self.analyzer.analyse(images, thresholds)
        except Exception as exc:  # noqa: BLE001 - a model failure must not leave studies stuck
            log.exception("model failed on a batch of %d", len(ready))
            for study in ready:
                self._fail(study.id, f"Model error: {type(exc).__name__}: {exc}", report)
            return
        for study, analysis in zip(ready, analyses, strict=True):
            problem = invalid_result(analysis)
            if problem:
                self._fail(study.id, problem, report, permanent=True)
                continue
            try:
                stored = self._store(study, analysis, thresholds, threshold_version)
            except Exception as exc:  # noqa: BLE001 - disk full, constraint, database error: this study only
                log.exception("study %s: results not stored", study.id)
                self._fail(study.id, f"Results could not be stored: {type(exc).__name__}: {exc}", report)
                continue
            report.done += int(stored)
            report.lost += int(not stored)

    def _fail(self, study_id: int, reason: str, report: BatchReport, permanent: bool = False) -> None:
        """Record a failure and free the lease; a failure to record it is logged, never raised."""
        report.failed += 1
        self.last_error = reason[:500]
        try:
            queue.mark_error(self.engine, study_id, self.worker_id, reason, self.settings.max_attempts,
                             permanent=permanent)
        except Exception:  # noqa: BLE001 - the lease expires and the study is claimed again
            log.exception("study %s: failure could not be recorded", study_id)

    # ------------------------------------------------------------------ results
    def _store(self, study, analysis, thresholds: dict[str, float], threshold_version: str) -> bool:
        """Heatmap files first (idempotent), then every row and the status in one transaction."""
        card = self.analyzer.card
        study_id = study.id
        rate = waiting_rate(self.settings.overdue_hours, self.analyzer.labels)
        files = self._write_heatmaps(study_id, analysis, card.version)

        def work(session) -> bool:
            # a requeued study replaces its earlier results for this model version
            queue.clear_results(session, study_id, card.version)
            score = suspicion(analysis.probabilities, thresholds) if analysis.in_domain else 0.0
            if not queue.mark_done(session, study_id, self.worker_id, model_version=card.version,
                                   triage_score=score, priority=priority_key(score, study.created_at, rate),
                                   abnormal=analysis.abnormal,
                                   in_domain=analysis.in_domain, domain_score=analysis.domain_score):
                raise LeaseLost(study_id)
            for label, p in analysis.probabilities.items():
                session.add(Prediction(
                    study_id=study_id, label=label, probability=p, spread=analysis.spread[label],
                    threshold=thresholds[label], flagged=label in analysis.flagged, model_name=card.name,
                    model_version=card.version, threshold_version=threshold_version, tta_views=analysis.tta_views,
                ))
            for label, rel in files.items():
                session.add(Heatmap(study_id=study_id, label=label, model_version=card.version, path=rel))
            session.add(StudyScores(study_id=study_id, model_version=card.version,
                                    probabilities=pack_floats(analysis.probabilities),
                                    thresholds=pack_floats(thresholds)))
            return True

        try:
            return run_write(self.engine, work)
        except LeaseLost:
            log.warning("study %s: lease lost to another worker; result discarded", study_id)
            return False

    def _write_heatmaps(self, study_id: int, analysis, model_version: str) -> dict[str, str]:
        """All 15 low-res maps in one npz (for on-request labels) + full-size PNGs of flags."""
        labels = list(analysis.probabilities)
        path = storage.safe_join(self.settings.data_dir, cams_relpath(study_id, model_version))
        buf = io.BytesIO()
        np.savez_compressed(buf, cams=analysis.cams.astype(np.float16), labels=np.array(labels))
        storage.atomic_write(path, buf.getvalue())
        files = {}
        for label in analysis.flagged:
            rel = storage.heatmap_relpath(study_id, model_version, label)
            png = storage.png_bytes(to_uint8(analysis.heatmap(labels.index(label))))
            storage.atomic_write(storage.safe_join(self.settings.data_dir, rel), png)
            files[label] = rel
        return files

    def _heartbeat(self, state: str, study_id: int | None) -> None:
        device = getattr(self.analyzer, "device", None)

        def work(session) -> None:
            hb = session.get(WorkerHeartbeat, self.worker_id)
            if hb is None:
                hb = WorkerHeartbeat(worker_id=self.worker_id, state=state)
                session.add(hb)
            hb.state, hb.current_study, hb.device = state, study_id, device
            hb.processed, hb.updated_at = self.processed, utcnow()
            hb.last_error = self.last_error

        try:
            run_write(self.engine, work)
        except Exception:  # a heartbeat is informative only: never stop work for it
            log.debug("heartbeat not written", exc_info=True)


def invalid_result(analysis) -> str | None:
    """Why a result must not be stored (non-finite numbers), or None when it is sound."""
    values = list(analysis.probabilities.values()) + list(analysis.spread.values())
    if analysis.abnormal is not None:
        values.append(analysis.abnormal)
    if not np.isfinite(np.asarray(values, dtype=np.float64)).all() or not np.isfinite(analysis.cams).all():
        return "The model produced non-finite output for this image; it was not stored."
    return None


class LeaseKeeper:
    """Renews a batch's leases every third of the lease time while the batch runs, so a
    batch slower than the lease is never claimed and computed by a second worker."""

    def __init__(self, engine: Engine, worker_id: str, ids: list[int], lease_seconds: float) -> None:
        self.engine, self.worker_id, self.ids, self.lease_seconds = engine, worker_id, ids, lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cxr-lease", daemon=True)
        self.renewals = 0

    def _run(self) -> None:
        interval = max(0.2, self.lease_seconds / 3.0)
        while not self._stop.wait(interval):
            try:
                queue.renew_leases(self.engine, self.worker_id, self.ids, self.lease_seconds)
                self.renewals += 1
            except Exception:  # noqa: BLE001 - a missed renewal only risks duplicate work
                log.warning("lease renewal failed", exc_info=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def cams_relpath(study_id: int, model_version: str) -> str:
    return f"{storage.heatmap_dir_relpath(study_id, model_version)}/{CAMS_FILE}"


def load_cams(data_dir: Path, study_id: int, model_version: str) -> tuple[np.ndarray, list[str]] | None:
    """The 15 stored low-resolution Grad-CAM maps of a study, if the worker wrote them."""
    path = storage.safe_join(data_dir, cams_relpath(study_id, model_version))
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return npz["cams"].astype(np.float32), [str(x) for x in npz["labels"]]


def start_background_worker(settings: Settings, engine: Engine) -> threading.Thread:
    """Start one worker thread in this process (the app does this on the default setup).

    The model loads inside the thread, so the first page is not held up by TensorFlow.
    """

    def run() -> None:
        from core.inference import InferenceEngine

        worker = Worker(settings, engine, analyzer=None)
        worker._heartbeat("starting (loading the model)", None)  # Home shows it is coming
        try:
            worker.analyzer = InferenceEngine(settings.model_dir, views=settings.tta_views or None)
        except Exception as exc:  # noqa: BLE001 - shown on Home, not a crash of the app
            log.exception("embedded worker: the model could not be loaded")
            worker.last_error = f"the model could not be loaded: {type(exc).__name__}: {exc}"[:500]
            worker._heartbeat("error", None)
            return
        worker.run_forever()

    thread = threading.Thread(target=run, name="cxr-worker", daemon=True)
    thread.start()
    return thread


def queue_counts(engine: Engine) -> dict[str, int]:
    from sqlalchemy import func

    from db.schema import Study

    with engine.connect() as conn:
        rows = conn.execute(select(Study.status, func.count()).group_by(Study.status)).all()
    counts = {s: 0 for s in StudyStatus.ALL}
    counts.update({s: int(n) for s, n in rows})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.worker")
    parser.add_argument("--once", action="store_true", help="process until the queue is empty, then exit")
    parser.add_argument("--worker-id", default=None)
    args = parser.parse_args(argv)
    settings = load_settings()
    from core.inference import InferenceEngine
    from db.bootstrap import open_database

    engine = open_database(settings)
    analyzer = InferenceEngine(settings.model_dir, views=settings.tta_views or None)
    worker = Worker(settings, engine, analyzer, args.worker_id)
    print(f"worker {worker.worker_id}: model {analyzer.card.name} {analyzer.card.version} on {analyzer.device}, "
          f"{len(analyzer.views)} TTA views", flush=True)

    def stop(signum, _frame) -> None:
        print(f"signal {signum}: finishing the current batch", flush=True)
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.once:
        worker.announce_model()
        while not worker.stop_event.is_set():
            report = worker.run_once()
            if report.claimed == 0:
                if queue_counts(engine)[StudyStatus.PROCESSING] == 0:
                    break
                time.sleep(1.0)  # others' leases may still expire
        worker._heartbeat("stopped", None)
    else:
        worker.run_forever()
    counts = queue_counts(engine)
    print(f"worker {worker.worker_id} stopped after {worker.processed} studies; queue {counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
