"""The DICOM receiver: a pynetdicom Storage SCP that takes chest radiographs from the
modality or the PACS into the same ingest as an upload.

``python -m core.receiver`` (entry shim for this module) listens on CXR_DICOM_PORT as
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

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from sqlalchemy import Engine

from core.config import Settings, load_settings
from db.bootstrap import open_database
from services.ingest import ingest_image

log = logging.getLogger("cxr.receiver")

# what is accepted for storage; CT and SR are accepted at association only so that such an
# object gets a clear refusal (failure status + reason) instead of a silent negotiation failure
IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}
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
STATUS_REFUSED = 0xA900  # "data set does not match SOP class": not an image this node reads
STATUS_CANNOT_PROCESS = 0xC000
STATUS_BUSY = 0xA700  # out of resources: the sender retries later


def store_handler(engine: Engine, settings: Settings):
    """The C-STORE handler: ingest the instance, answer with its outcome."""

    def handle(event) -> int:
        caller = str(event.assoc.requestor.ae_title).strip()
        sop_uid = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "instance")
        data = event.encoded_dataset(include_meta=True)
        result = ingest_image(
            engine,
            settings,
            f"{sop_uid}.dcm",
            data,
            actor=f"dicom:{caller}",
            source=f"dicom:{caller}",
            quiet_seconds=settings.dicom_quiet_seconds,
        )
        if result.ok:
            log.info("%s from %s: %s study %s", sop_uid, caller, result.status, result.study_id)
            return 0x0000
        log.warning("%s from %s refused (%s): %s", sop_uid, caller, result.code, result.message)
        if result.code == "busy":
            return STATUS_BUSY
        return STATUS_REFUSED if result.code in ("not_a_radiograph", "no_pixel_data") else STATUS_CANNOT_PROCESS

    return handle


def make_ae(settings: Settings) -> AE:
    if not settings.dicom_allowed_callers:
        raise ValueError(
            "CXR_DICOM_ALLOWED_CALLERS is empty: every caller would be refused, so the receiver "
            "does not listen. Name the calling AE titles of the PACS or modalities that may send."
        )
    ae = AE(ae_title=settings.dicom_ae_title)
    ae.require_calling_aet = list(settings.dicom_allowed_callers)
    ae.maximum_associations = 16
    ae.add_supported_context(Verification)
    for uid in list(IMAGE_CLASSES) + list(REFUSED_CLASSES):
        ae.add_supported_context(uid, TRANSFER_SYNTAXES)
    return ae


def start_receiver(settings: Settings, engine: Engine, block: bool = False):
    """Listen on all interfaces at the configured port; returns the server (non-blocking)."""
    ae = make_ae(settings)
    handlers = [(evt.EVT_C_STORE, store_handler(engine, settings))]
    log.info(
        "receiver %s listening on port %d for %s",
        settings.dicom_ae_title,
        settings.dicom_port,
        ", ".join(settings.dicom_allowed_callers),
    )
    return ae.start_server(("0.0.0.0", settings.dicom_port), block=block, evt_handlers=handlers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.receiver", description="DICOM Storage SCP")
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


if __name__ == "__main__":
    sys.exit(main())
