"""The DICOM receiver: a pynetdicom Storage SCP that takes chest radiographs from the
modality or the PACS into the same ingest as an upload.

``cxr receiver`` listens on CXR_DICOM_PORT as
CXR_DICOM_AE_TITLE. Only calling AE titles in CXR_DICOM_ALLOWED_CALLERS may associate
(an unknown caller is refused at association; with an empty list no caller is accepted,
so the receiver does not start). Each instance is decoded, checked, stored and audited
exactly like an upload; a refused instance gets a failure status and its reason in the
log and the audit trail. The success status is sent only after the instance is committed,
so anything acknowledged survives a crash; the same instance sent twice is stored once.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from enum import IntEnum
from pathlib import Path
from typing import Any

import pydicom
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import time
from sqlalchemy import Engine

from core import storage
from core.config import Settings, load_settings
from core.dicom_policy import (
    IMAGE_CLASSES,
    CallerRule,
    Refusal,
    association_refusal,
    instance_problem,
    parse_allow_list,
)
from core.errors import ImageTooLarge, RejectedInput
from db import audit
from db.bootstrap import open_database
from db.session import run_write
from services.ingest import ingest_image, reject, remove_orphans

log = logging.getLogger("cxr.receiver")

# what is accepted for storage (core.dicom_policy.IMAGE_CLASSES); CT and SR are accepted at
# association only so that such an object gets a clear refusal (failure status + reason)
# instead of a silent negotiation failure
REFUSED_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
}
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE lossless
]


class StoreStatus(IntEnum):
    """The C-STORE response statuses this node sends (PS3.4 B.2.3)."""

    SUCCESS = 0x0000
    REFUSED = 0xA900  # "data set does not match SOP class": not an image this node reads
    CANNOT_PROCESS = 0xC000
    BUSY = 0xA700  # out of resources: the sender retries later


REFUSED_CODES = {"not_a_radiograph", "no_pixel_data", "not_an_image_class"}
# pynetdicom's own cap counts every open socket, idle ones included; it is set far above
# ours so that idle connections (closed after the ACSE timeout) never crowd out a caller,
# and our cap (established associations only) is checked when a request arrives
SOCKET_CAP = 512


class WrongInstance(RejectedInput):
    code = "not_an_image_class"


def store_handler(engine: Engine, settings: Settings, limit: ReceiptLimit | None = None):
    """The C-STORE handler: check what was sent against what it claims, ingest the
    instance, answer with its outcome."""

    def handle(event) -> int:
        if limit is not None:
            limit.instance_done(event.assoc)
        caller = str(event.assoc.requestor.ae_title).strip()
        address = str(event.assoc.requestor.address)
        path = Path(event.dataset_path)
        try:
            size = path.stat().st_size
            if size > settings.max_upload_bytes:  # refused before it is read or decoded
                exc: RejectedInput = ImageTooLarge(
                    f"The instance is {size:,} bytes, above the limit of {settings.max_upload_bytes:,}."
                )
                return _refused(engine, caller, address, exc)
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            problem = instance_problem(str(event.request.AffectedSOPClassUID), ds)
            if problem:
                return _refused(engine, caller, address, WrongInstance(f"Refused: {problem}."))
            data = path.read_bytes()
        finally:
            path.unlink(missing_ok=True)
        sha = storage.sha256_hex(data)
        # the stored name says where it came from; nothing the sender wrote becomes a name
        result = ingest_image(
            engine,
            settings,
            f"dicom-{sha[:16]}.dcm",
            data,
            actor=f"dicom:{caller}",
            source=f"dicom:{caller}",
            quiet_seconds=settings.dicom_quiet_seconds,
        )
        if result.ok:
            log.info("instance from %s at %s: %s study %s", caller, address, result.status, result.study_id)
            return StoreStatus.SUCCESS
        log.warning("instance from %s at %s refused (%s): %s", caller, address, result.code, result.message)
        return _status_for(result.code)

    return handle


class ReceiptLimit:
    """Aborts an association as soon as the instance it is sending grows past the upload
    limit, while it arrives (EVT_DATA_RECV, counted per association since its last
    complete instance): a 300 MB instance is never received whole, decoded or held in
    memory (datasets are written to disk as they arrive), and its partial file is removed."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.limit = engine, settings.max_upload_bytes
        self.margin = 1 << 20  # PDU headers and the command set ride along with the data
        self.received: dict[int, int] = {}
        self.lock = threading.Lock()

    def on_data(self, event) -> None:
        key = id(event.assoc)
        with self.lock:
            total = self.received.get(key, 0) + len(event.data)
            self.received[key] = total
        if total <= self.limit + self.margin or getattr(event.assoc, "_cxr_over_limit", False):
            return
        event.assoc._cxr_over_limit = True
        partial = getattr(getattr(event.assoc.dimse, "message", None), "_data_set_path", None)
        if partial:
            Path(partial).unlink(missing_ok=True)
        caller = str(event.assoc.requestor.ae_title).strip()
        exc = ImageTooLarge(f"The instance grew past the limit of {self.limit:,} bytes while arriving; aborted.")
        _refused(self.engine, caller, str(event.assoc.requestor.address), exc)
        event.assoc.abort(block=False)

    def instance_done(self, assoc) -> None:
        with self.lock:
            self.received[id(assoc)] = 0

    def closed(self, event) -> None:
        with self.lock:
            self.received.pop(id(event.assoc), None)


def _status_for(code: str) -> StoreStatus:
    if code == "busy":
        return StoreStatus.BUSY
    return StoreStatus.REFUSED if code in REFUSED_CODES else StoreStatus.CANNOT_PROCESS


def _refused(engine: Engine, caller: str, address: str, exc: RejectedInput) -> StoreStatus:
    log.warning("instance from %s at %s refused (%s): %s", caller, address, exc.code, exc)
    reject(engine, "dicom instance", exc, f"dicom:{caller}")
    return _status_for(exc.code)


def association_handler(engine: Engine, settings: Settings, rules: list[CallerRule]):
    """EVT_REQUESTED: accept or refuse an association request by the allow-list (title and
    address), the called AE title and the caps; every refusal is logged and audited."""

    def handle(event) -> None:
        assoc = event.assoc
        request = assoc.requestor.primitive
        calling, called = str(request.calling_ae_title), str(request.called_ae_title)
        address = str(assoc.requestor.address)
        established = [a for a in assoc.ae.active_associations if a.is_acceptor and a.is_established]
        from_caller = [a for a in established if str(a.requestor.ae_title).rstrip(" ") == calling.rstrip(" ")]
        refusal = association_refusal(
            rules,
            settings.dicom_ae_title,
            calling,
            called,
            address,
            len(from_caller),
            len(established),
            settings.dicom_max_per_caller,
            settings.dicom_max_associations,
        )
        if refusal is None:
            return
        _audit_refusal(engine, refusal, calling, called, address)  # recorded before the caller hears
        busy = refusal in (Refusal.TOO_MANY, Refusal.TOO_MANY_FROM_CALLER)
        diagnostic = {Refusal.WRONG_CALLED: 0x07, Refusal.UNKNOWN_CALLER: 0x03, Refusal.WRONG_ADDRESS: 0x03}
        if busy:  # transient, local limit exceeded: the caller may retry
            assoc.acse.send_reject(0x02, 0x03, 0x02)
        else:  # permanent, service user: calling (or called) AE title not recognised
            assoc.acse.send_reject(0x01, 0x01, diagnostic[refusal])
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()  # as pynetdicom's own refusals do: the reject PDU leaves before the socket closes
        log.warning("association refused: %s (calling %r, called %r, from %s)", refusal, calling, called, address)

    return handle


def _audit_refusal(engine: Engine, refusal: Refusal, calling: str, called: str, address: str) -> None:
    def work(session) -> None:
        audit.record(
            session,
            "association_refused",
            f"dicom:{calling.strip()[:16]}",
            None,
            reason=str(refusal),
            calling=calling.strip()[:16],
            called=called.strip()[:16],
            address=address[:64],
        )

    try:
        run_write(engine, work)
    except Exception:  # noqa: BLE001 - the refusal stands; only its audit row is missing
        log.warning("association refusal not audited", exc_info=True)


def make_ae(settings: Settings) -> AE:
    if not settings.dicom_allowed_callers:
        raise ValueError(
            "CXR_DICOM_ALLOWED_CALLERS is empty: every caller would be refused, so the receiver "
            "does not listen. Name the calling AE titles of the PACS or modalities that may send."
        )
    parse_allow_list(settings.dicom_allowed_callers)  # a malformed entry stops the start
    _config.STORE_RECV_CHUNKED_DATASET = True  # datasets go to disk as they arrive, not to memory
    ae = AE(ae_title=settings.dicom_ae_title)
    ae.maximum_associations = SOCKET_CAP
    ae.acse_timeout = settings.dicom_acse_timeout
    ae.dimse_timeout = settings.dicom_dimse_timeout
    ae.network_timeout = settings.dicom_network_timeout
    ae.add_supported_context(Verification)
    for uid in list(IMAGE_CLASSES) + list(REFUSED_CLASSES):
        ae.add_supported_context(uid, TRANSFER_SYNTAXES)
    return ae


def start_receiver(settings: Settings, engine: Engine, block: bool = False):
    """Listen on the configured address and port; returns the server (non-blocking)."""
    ae = make_ae(settings)
    rules = parse_allow_list(settings.dicom_allowed_callers)
    remove_orphans(engine, settings)  # files of instances a killed receiver never committed
    limit = ReceiptLimit(engine, settings)
    handlers: list[Any] = [  # pynetdicom's evt constants are typed apart from its own signature
        (evt.EVT_REQUESTED, association_handler(engine, settings, rules)),
        (evt.EVT_DATA_RECV, limit.on_data),
        (evt.EVT_C_STORE, store_handler(engine, settings, limit)),
        (evt.EVT_RELEASED, limit.closed),
        (evt.EVT_ABORTED, limit.closed),
        (evt.EVT_CONN_CLOSE, limit.closed),
    ]
    log.info(
        "receiver %s listening on %s:%d for %s",
        settings.dicom_ae_title,
        settings.dicom_bind_address,
        settings.dicom_port,
        ", ".join(settings.dicom_allowed_callers),
    )
    return ae.start_server((settings.dicom_bind_address, settings.dicom_port), block=block, evt_handlers=handlers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr receiver", description="DICOM Storage SCP")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    try:
        server = start_receiver(settings, open_database(settings))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"receiver {settings.dicom_ae_title} on port {settings.dicom_port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    return 0
