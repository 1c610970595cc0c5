"""Sends queued result objects to the configured PACS by C-STORE, with retries and
exponential back-off. A destination that is down only delays its own queue: analysis and
review never wait for it (the PACS service, services.pacs.service, runs the rounds)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pydicom
from pynetdicom import AE
from sqlalchemy import Engine

from core import storage
from core.config import Settings, parse_destination
from db.outbound import OutboundItem, due, mark_failed_attempt, mark_sent

log = logging.getLogger("cxr.pacs")
FIRST_BACKOFF_S, MAX_BACKOFF_S = 5.0, 600.0  # then every 10 minutes until the 24 h window ends
TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]  # explicit, implicit VR little endian


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s ... up to 10 minutes between tries."""
    return timedelta(seconds=min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, attempts - 1)))


def c_store(settings: Settings, destination: str, path, timeout_s: float = 15.0) -> int:
    """Send one file; returns the DIMSE status (0x0000: stored). Raises ConnectionError when
    no association could be made."""
    ae_title, host, port = parse_destination(destination)
    ds = pydicom.dcmread(path)
    ae = AE(ae_title=settings.dicom_ae_title)
    ae.acse_timeout = ae.network_timeout = timeout_s
    ae.dimse_timeout = timeout_s * 2
    ae.add_requested_context(ds.SOPClassUID, TRANSFER_SYNTAXES)
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        raise ConnectionError(f"no association with {destination} (refused, aborted or unreachable)")
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    if not status:
        raise ConnectionError(f"{destination} gave no answer to the C-STORE")
    return int(status.Status)


def send_due(
    engine: Engine, settings: Settings, actor: str = "sender", limit: int = 20, now: datetime | None = None
) -> SendReport:
    """Try every result object whose time has come (``now``: a clock for tests and the
    outage benchmark); each outcome is recorded and audited."""
    report = SendReport()
    for item in due(engine, limit, now):
        try:
            status = c_store(settings, item.destination, storage.safe_join(settings.data_dir, item.path))
            error = None if status == 0x0000 else f"the PACS answered status 0x{status:04X}"
        except (ConnectionError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            mark_sent(engine, item, actor)
            report.sent += 1
        else:
            _failed(engine, item, error, actor, now)
            report.failed += 1
    return report


def _failed(engine: Engine, item: OutboundItem, error: str, actor: str, now: datetime | None = None) -> None:
    status = mark_failed_attempt(engine, item, error, actor, backoff(item.attempts + 1), now)
    log.warning("result %s for study %s not sent (%s): %s", item.kind, item.study_id, status, error)
