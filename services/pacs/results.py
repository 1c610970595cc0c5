"""A study's result objects for the PACS, built from the results the worker stored: its SR
(TID 1500) and the Grad-CAM overlays of its flagged findings, each drawn on the image its
map was computed on, written to the data folder (services.pacs.service queues them for
C-STORE, services.pacs.sender sends them). Studies that did not come as DICOM (PNG/JPEG
uploads) have no PACS study to attach results to and get none."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine

from core import storage
from core.config import Settings
from core.decode import decode_bytes
from core.dicom_results import LabelResult, overlay_image, structured_report
from core.gradcam import overlay
from core.pixel_transforms import to_uint8
from db.outbound import NewOutbound
from db.results import stored_results
from db.studies import InstanceRecord, analysed_instances

log = logging.getLogger("cxr.pacs")


def _write(settings: Settings, study_id: int, ds) -> str:
    rel = f"outbound/{int(study_id)}/{ds.SOPInstanceUID}.dcm"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    storage.atomic_write(storage.safe_join(settings.data_dir, rel), buf.getvalue())
    return rel


def _grey(settings: Settings, record: InstanceRecord, path: Path) -> np.ndarray:
    """The image an overlay is drawn on: the 8-bit preview ingest stored from its one
    decode (modality LUT, VOI window, MONOCHROME1 inverted), so the PACS path never
    decodes the DICOM again; decoded here only if the preview is missing or of another size."""
    preview = storage.safe_join(settings.data_dir, storage.preview_relpath(record.sha256))
    if preview.is_file():
        grey = np.asarray(Image.open(preview).convert("L"))
        if grey.shape == (record.height, record.width):
            return grey
    return to_uint8(decode_bytes(path.read_bytes()).pixels)


def build_result_objects(engine: Engine, settings: Settings, study_id: int) -> list[NewOutbound]:
    """Write the study's result objects to the data folder; returns them for the outbound
    queue (none for a study with no DICOM image or no PACS to send to)."""
    results = stored_results(engine, study_id)
    if results is None or not results.study_instance_uid or not settings.dicom_destination:
        return []
    records = [r for r in analysed_instances(engine, [study_id])[study_id] if r.file_format == "dicom"]
    if not records:
        return []
    paths = {r.id: storage.safe_join(settings.data_dir, r.stored_path) for r in records}
    by_id = {r.id: r for r in records}
    headers = {r.id: pydicom.dcmread(paths[r.id], stop_before_pixels=True) for r in records}
    report = structured_report(
        list(headers.values()),
        [LabelResult(p.label, p.probability, p.threshold, p.flagged) for p in results.predictions],
        results.model_name or results.model_version,
        results.model_version,
        results.in_domain,
        results.domain_score,
    )
    objects: list[tuple[str, Dataset]] = [("sr", report)]
    series = generate_uid()
    greys: dict[int, np.ndarray] = {}  # each source image decoded once, however many maps it has
    for n, heat in enumerate(results.heatmaps, start=1):
        source_id = heat.instance_id
        if source_id not in paths:  # a map whose image is unknown is never drawn on another one
            log.warning("study %s: the %s map names no analysed DICOM image; no overlay sent", study_id, heat.label)
            continue
        if source_id not in greys:
            greys[source_id] = _grey(settings, by_id[source_id], paths[source_id])
        grey = greys[source_id]
        heatmap = storage.read_heatmap(settings.data_dir, heat.path, heat.label, grey.shape[1], grey.shape[0])
        rgb = overlay(grey, heatmap, opacity=0.45)
        # the overlay copies the source's identifying header, never its pixels: the header read above serves
        objects.append(("overlay", overlay_image(headers[source_id], rgb, heat.label, n, series)))
    return [
        NewOutbound(
            study_id,
            kind,
            ds.SOPInstanceUID,
            ds.SOPClassUID,
            _write(settings, study_id, ds),
            settings.dicom_destination,
        )
        for kind, ds in objects
    ]
