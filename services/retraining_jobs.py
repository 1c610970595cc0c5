"""Retraining jobs queued from the Model page, run by a worker in a thread of its own
process, so analysis goes on beside a retraining (one job at a time per worker)."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from core.config import Settings
from db import models as models_db

log = logging.getLogger("cxr.worker")


class RetrainingJobs:
    def __init__(self, engine: Engine, settings: Settings, worker_id: str) -> None:
        self.engine, self.settings, self.worker_id = engine, settings, worker_id
        self._thread: threading.Thread | None = None

    def start_next(self) -> bool:
        """Claim and start the next queued job unless one is running here; True when one started."""
        if self._thread is not None and self._thread.is_alive():
            return False
        job = models_db.claim_job(self.engine, self.worker_id)
        if job is None:
            return False
        self._thread = threading.Thread(target=self.run, args=(job,), name="cxr-retrain", daemon=True)
        self._thread.start()
        return True

    def run(self, job) -> None:
        """Retrain into ``models/candidate-<job>``; the outcome is on the Model page."""
        from services.retraining import Cancelled, retrain

        out = self.settings.data_dir / "models" / f"candidate-{job.id}"
        try:
            result = retrain(
                self.engine,
                self.settings,
                out,
                actor=job.requested_by or self.worker_id,
                progress=lambda fraction, message: models_db.report_progress(self.engine, job.id, fraction, message),
            )
        except Cancelled:
            models_db.finish_job(self.engine, job.id, models_db.JobStatus.CANCELLED, "cancelled; nothing was written")
        except Exception as exc:  # noqa: BLE001 - a failed job is reported on the Model page
            log.exception("retraining job %s failed", job.id)
            models_db.finish_job(self.engine, job.id, models_db.JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        else:
            verdict = "passes the gate" if result.gate.passed else "does not pass the gate"
            message = f"candidate {result.card.name} written; it {verdict}"
            models_db.finish_job(self.engine, job.id, models_db.JobStatus.DONE, message, str(result.folder))
