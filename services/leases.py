"""A batch's leases kept alive while it runs: renewed every third of the lease time, so a
batch slower than the lease is never claimed and computed by a second worker."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from db import queue

log = logging.getLogger("cxr.worker")


class LeaseKeeper:
    """``with LeaseKeeper(...):`` around the work on the claimed studies."""

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
