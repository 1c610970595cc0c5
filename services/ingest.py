"""Take uploaded files into the queue: validate, deduplicate, store, enqueue.

``cxr ingest PATH...`` enqueues files, folders and zip archives and prints
one line per input. A rejected input changes nothing but adds a rejection record to the
audit log; a repeated upload of the same bytes returns the study already stored.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import posixpath
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from core import storage
from core.archive import ArchiveLimits, iter_members
from core.config import Settings, load_settings
from core.decode import DecodedImage, Limits, decode_bytes, sniff_format
from core.errors import EmptyArchive, ImageTooLarge, InstanceConflict, RejectedInput
from core.pixel_transforms import to_uint8
from core.storage import iter_input_paths
from core.study_views import analysed_view
from db import audit
from db.bootstrap import open_database
from db.schema import utcnow
from db.session import DatabaseBusy, run_write
from db.studies import (
    NewInstance,
    NewStudy,
    find_by_hash,
    find_instance,
    known_hashes,
    place_instance,
    stored_instance,
)

log = logging.getLogger("cxr.ingest")


class IngestOutcome(StrEnum):
    ACCEPTED = "accepted"  # stored (and queued when it can be analysed)
    DUPLICATE = "duplicate"  # the same file is already stored: nothing new
    REJECTED = "rejected"  # not stored; the message says why


@dataclass(frozen=True)
class IngestResult:
    name: str
    status: IngestOutcome
    study_id: int | None = None
    message: str = ""
    code: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not IngestOutcome.REJECTED


def display_name(name: str) -> str:
    """The file's base name, for display and label matching only (never a path)."""
    base = posixpath.basename(name.replace("\\", "/")).strip()
    return (base or "unnamed")[:255]


def ingest_upload(
    engine: Engine, settings: Settings, name: str, data: bytes, actor: str | None = None, user_id: int | None = None
) -> list[IngestResult]:
    """Ingest one uploaded file, which may be a zip of studies; one result per study."""
    if len(data) > settings.max_upload_bytes:
        err = ImageTooLarge(f"The upload is {len(data):,} bytes, above the limit of {settings.max_upload_bytes:,}.")
        return [reject(engine, name, err, actor)]
    if sniff_format(data) != "zip":
        return [ingest_image(engine, settings, name, data, actor, user_id)]
    limits = ArchiveLimits(settings.max_zip_members, settings.max_zip_total_bytes, settings.max_upload_bytes)
    results: list[IngestResult] = []
    try:
        for member, content in iter_members(data, limits):
            label = f"{display_name(name)}/{member}"
            if sniff_format(content) == "zip":
                results.append(reject(engine, label, RejectedInput("Nested archives are not accepted."), actor))
                continue
            results.append(ingest_image(engine, settings, label, content, actor, user_id))
    except RejectedInput as exc:
        results.append(reject(engine, name, exc, actor))
    if not results:  # folders only, or nothing at all: still one line that says so
        results.append(
            reject(engine, name, EmptyArchive("The zip archive holds no file to read (folders only)."), actor)
        )
    return results


def ingest_image(
    engine: Engine,
    settings: Settings,
    name: str,
    data: bytes,
    actor: str | None = None,
    user_id: int | None = None,
    source: str = "upload",
    quiet_seconds: float = 0.0,
) -> IngestResult:
    """Validate one image and place it in its study, or return why it was refused.

    A DICOM instance joins the study of its StudyInstanceUID (``quiet_seconds``: the study
    is analysed only once no instance has arrived for that long); any other file is a
    study of one image. Never raises: one bad or unlucky file (a busy database, a full
    disk) gets its own result line and files that no study owns are removed again, so a
    batch goes on and nothing is left orphaned on disk.
    """
    try:
        return _ingest_image(engine, settings, name, data, actor, user_id, source, quiet_seconds)
    except DatabaseBusy as exc:
        return IngestResult(name, IngestOutcome.REJECTED, None, str(exc), "busy")
    except RejectedInput as exc:  # refused when placed in its study (another patient): nothing was kept
        return reject(engine, name, exc, actor)
    except Exception as exc:  # noqa: BLE001 - reported per file, never stops a batch
        log.exception("ingest of %r failed", display_name(name))
        return IngestResult(
            name,
            IngestOutcome.REJECTED,
            None,
            f"The file could not be stored ({type(exc).__name__}); nothing was kept.",
            "error",
        )


def _duplicate(engine: Engine, name: str, sha: str | None, sop_uid: str | None = None) -> IngestResult | None:
    """The stored study holding these bytes (``sha``) or this SOP instance, as a result line."""
    existing = find_by_hash(engine, sha) if sha else None
    if existing is None and sop_uid:
        existing = find_instance(engine, sop_uid)
    if existing is None:
        return None
    return IngestResult(name, IngestOutcome.DUPLICATE, existing, f"Already stored in study {existing}.")


def _same_instance(engine: Engine, settings: Settings, name: str, decoded: DecodedImage) -> IngestResult | None:
    """A SOP Instance UID already stored: the same pixels (a re-send, perhaps re-encoded) is
    the stored instance, acknowledged again; other pixels under that UID are refused, since
    a UID names one image and either the sender or the stored copy is wrong."""
    sop_uid = decoded.metadata.get("sop_instance_uid")
    stored = stored_instance(engine, sop_uid) if sop_uid else None
    if stored is None:
        return None
    study_id, relpath = stored
    try:
        kept = decode_bytes(storage.safe_join(settings.data_dir, relpath).read_bytes()).pixels
    except (OSError, RejectedInput):
        kept = None
    if kept is not None and kept.shape == decoded.pixels.shape and np.array_equal(kept, decoded.pixels):
        return IngestResult(name, IngestOutcome.DUPLICATE, study_id, f"Already stored in study {study_id}.")
    raise InstanceConflict(
        f"An image with this SOP Instance UID is already stored in study {study_id} with other pixels; "
        "the new one was not stored. Send it under a new UID if it is a new image."
    )


def _ingest_image(
    engine: Engine,
    settings: Settings,
    name: str,
    data: bytes,
    actor: str | None,
    user_id: int | None,
    source: str,
    quiet_seconds: float,
) -> IngestResult:
    sha = storage.sha256_hex(data)
    found = _duplicate(engine, name, sha)
    if found:
        return found
    try:
        decoded = decode_bytes(data, Limits(settings.max_pixels, settings.min_side))
    except RejectedInput as exc:
        return reject(engine, name, exc, actor)
    meta = decoded.metadata
    found = _same_instance(engine, settings, name, decoded)  # the same SOP instance, other bytes
    if found:
        return found
    relpath = storage.original_relpath(sha, meta["format"])
    files = [relpath, storage.preview_relpath(sha)]
    action = "upload" if source == "upload" else "dicom_received"
    try:
        storage.store_bytes(settings.data_dir, relpath, data)
        storage.store_bytes(settings.data_dir, files[1], storage.png_bytes(to_uint8(decoded.pixels)))
        study = new_study(sha, name, relpath, decoded, user_id, settings, quiet_seconds)
        image = new_instance(sha, relpath, decoded, source)
        for attempt in range(2):  # the first instances of one study may arrive on two connections at once
            try:
                placed = run_write(engine, lambda session: place_instance(session, study, image, actor, action))
                break
            except IntegrityError:
                found = _duplicate(engine, name, sha, meta.get("sop_instance_uid"))
                if found or attempt:
                    return found or IngestResult(
                        name, IngestOutcome.REJECTED, None, "Conflicting study identifiers.", "conflict"
                    )
    except BaseException:
        if find_by_hash(engine, sha) is None:  # no study owns these files: remove them
            for rel in files:
                storage.safe_join(settings.data_dir, rel).unlink(missing_ok=True)
        raise
    if not image.analysed:
        return IngestResult(
            name, IngestOutcome.ACCEPTED, placed.study_id, f"Stored, not analysed: {image.not_analysed_reason}."
        )
    joined = "" if placed.new_study else " (added to the study's other images)"
    return IngestResult(name, IngestOutcome.ACCEPTED, placed.study_id, f"Queued for analysis{joined}.")


def remove_orphans(engine: Engine, settings: Settings, older_than_s: float = 600.0) -> int:
    """Remove files that no stored image owns: an original or preview written just before a
    process was killed, ahead of the commit that would have owned it, and temporary files of
    interrupted writes. Run at start; a file younger than ``older_than_s`` may belong to an
    ingest still under way in another process and is left. Returns how many were removed."""
    import time

    owned = known_hashes(engine)
    cutoff = time.time() - older_than_s
    removed = 0
    for folder in ("originals", "previews"):
        root = settings.data_dir / folder
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if not path.is_file() or path.stat().st_mtime > cutoff:
                continue
            if path.name.startswith(".tmp-") or path.stem not in owned:
                path.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d file(s) that no stored image owns", removed)
    return removed


def new_instance(sha: str, relpath: str, decoded: DecodedImage, source: str) -> NewInstance:
    meta = decoded.metadata
    analysed, reason = analysed_view(meta.get("view_position"), meta.get("view_code_meaning"))
    return NewInstance(
        sha256=sha,
        stored_path=relpath,
        file_format=meta["format"],
        width=decoded.width,
        height=decoded.height,
        analysed=analysed,
        not_analysed_reason=reason,
        source=source[:80],
        sop_instance_uid=meta.get("sop_instance_uid"),
        series_instance_uid=meta.get("series_instance_uid"),
        sop_class_uid=meta.get("sop_class_uid"),
        view_position=(meta.get("view_position") or "")[:16] or None,
    )


def new_study(
    sha: str,
    name: str,
    relpath: str,
    decoded: DecodedImage,
    user_id: int | None,
    settings: Settings,
    quiet_seconds: float = 0.0,
) -> NewStudy:
    """The study a validated image starts (or joins): queued first in, first out."""
    meta = decoded.metadata
    now = utcnow()
    return NewStudy(
        sha256=sha,
        original_name=display_name(name),
        stored_path=relpath,
        file_format=meta["format"],
        width=decoded.width,
        height=decoded.height,
        created_at=now,
        priority=settings.triage().key(0.0, now),
        modality=meta.get("modality"),
        view_position=meta.get("view_position"),
        pixel_spacing=meta.get("pixel_spacing"),
        photometric=meta.get("photometric"),
        bits_stored=meta.get("bits_stored"),
        patient_age=meta.get("patient_age"),
        patient_sex=meta.get("patient_sex"),
        uploaded_by=user_id,
        study_instance_uid=meta.get("study_instance_uid"),
        accession_number=meta.get("accession_number"),
        study_date=meta.get("study_date"),
        ready_at=now + timedelta(seconds=quiet_seconds),
        patient_identity=patient_identity(settings, meta.get("patient_fields")),
    )


def patient_identity(settings: Settings, fields: str | None) -> str | None:
    """A keyed digest of the DICOM patient (HMAC-SHA256 under the site's identity key): equal
    for the same patient, useless to anyone without the key (a PatientID is short enough to
    guess from a plain hash). None for files that name no patient (PNG, JPEG)."""
    if fields is None:
        return None
    key = storage.read_or_create_secret(settings.data_dir / "identity.key")
    return hmac.new(key, fields.encode("utf-8"), hashlib.sha256).hexdigest()


def reject(engine: Engine, name: str, exc: RejectedInput, actor: str | None) -> IngestResult:
    """Record the rejection (and only that) so an admin can see what was refused."""
    message = str(exc)

    def work(session) -> None:
        audit.record(
            session, "upload_rejected", actor, None, name=display_name(name), code=exc.code, reason=message[:500]
        )

    try:
        run_write(engine, work)
    except DatabaseBusy:  # the rejection still reaches the user; only its audit row waits
        log.warning("rejection of %r not audited: database busy", display_name(name))
    return IngestResult(name, IngestOutcome.REJECTED, None, message, exc.code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr ingest", description="Queue radiographs for analysis.")
    parser.add_argument("paths", nargs="+", help="files, folders or zip archives")
    args = parser.parse_args(argv)
    settings = load_settings()
    engine = open_database(settings)
    counts = {str(o): 0 for o in IngestOutcome}
    for path in iter_input_paths(args.paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"rejected\t{path}\tcannot read: {exc.strerror}")
            counts["rejected"] += 1
            continue
        for result in ingest_upload(engine, settings, path.name, data, actor="cli"):
            counts[result.status] += 1
            sid = f"study {result.study_id}" if result.study_id else "-"
            print(f"{result.status}\t{result.name}\t{sid}\t{result.message}")
    print(f"{counts['accepted']} accepted, {counts['duplicate']} duplicate, {counts['rejected']} rejected")
    return 0 if counts["rejected"] == 0 else 1
