"""A claimed study's analysis stored: its Grad-CAM maps written to the data folder, then
every row (predictions, heatmap rows, packed scores, image features, the study's status
and, for a DICOM study with a PACS to send to, its job in the PACS outbox) in one
transaction fenced on the worker's lease."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from core import storage
from core.analysis import Analysis
from core.config import Settings
from core.model_card import ModelCard
from core.study_views import combine
from core.triage import TriagePolicy
from db import site_settings
from db.queue import ClaimedStudy
from db.results import StudyResult, active_thresholds, store_results
from db.session import run_write
from db.studies import InstanceRecord

log = logging.getLogger("cxr.worker")


@dataclass(frozen=True)
class Storing:
    """What every study of a batch is stored with."""

    card: ModelCard
    thresholds: dict[str, float]
    threshold_version: str
    triage: TriagePolicy
    worker_id: str
    to_pacs: bool  # results_go_to_pacs: a DICOM study's result objects are to be sent


def results_go_to_pacs(engine: Engine, settings: Settings) -> bool:
    """Whether a DICOM study's results are to be sent back: this process has a destination,
    or a PACS service has recorded the site's (a worker started without the variable still
    records the job the service waits for)."""
    return settings.destination is not None or site_settings.pacs_destination(engine) is not None


def thresholds_in_force(engine: Engine, card: ModelCard) -> tuple[dict[str, float], str]:
    """The admin-saved threshold set for this model if any, else the card's own."""
    saved = active_thresholds(engine, card.version)
    return saved if saved else (dict(card.thresholds), card.threshold_version)


def study_result(
    how: Storing,
    study: ClaimedStudy,
    records: list[InstanceRecord],
    analyses: list[Analysis],
    combined: tuple[Analysis, dict[str, int]],
    maps_file: str,
) -> StudyResult:
    """The rows of one study from its images' analyses and their combination
    (core.study_views.combine): triaged, each flagged finding's map tied to the image it
    was computed on."""
    analysis, source = combined
    instance_of = {lab: records[source[lab]].id for lab in analysis.probabilities}
    score = how.triage.suspicion(analysis.probabilities, how.thresholds) if analysis.in_domain else 0.0
    return StudyResult(
        study_id=study.id,
        model_name=how.card.name,
        model_version=how.card.version,
        labels=tuple(how.card.labels),
        probabilities=analysis.probabilities,
        spread=analysis.spread,
        thresholds=how.thresholds,
        threshold_version=how.threshold_version,
        flagged=frozenset(analysis.flagged),
        tta_views=analysis.tta_views,
        triage_score=score,
        priority=how.triage.key(score, study.created_at),
        abnormal=analysis.abnormal,
        in_domain=analysis.in_domain,
        domain_score=analysis.domain_score,
        # a flagged finding's map, and the image it was computed on, is a PACS overlay
        heatmap_files={lab: maps_file for lab in analysis.flagged},
        heatmap_instances={lab: instance_of[lab] for lab in analysis.flagged},
        features={
            record.id: np.asarray(a.features, dtype="<f2").tobytes()
            for record, a in zip(records, analyses)
            if a.features is not None
        },
        for_pacs=how.to_pacs and any(r.file_format == "dicom" for r in records),
    )


def store_study(
    engine: Engine,
    data_dir: Path,
    how: Storing,
    study: ClaimedStudy,
    records: list[InstanceRecord],
    analyses: list[Analysis],
) -> StudyResult | None:
    """Heatmap file first (idempotent), then the rows in one transaction fenced on the
    lease; None when the lease was lost to another worker (the result is discarded)."""
    combined = combine(analyses)
    analysis, source = combined
    labels = list(analysis.probabilities)
    maps_file = storage.write_heatmaps(
        data_dir, study.id, how.card.version, labels, analysis.cams, [records[source[lab]].id for lab in labels]
    )
    result = study_result(how, study, records, analyses, combined, maps_file)
    if not run_write(engine, lambda session: store_results(session, [result], how.worker_id)):
        log.warning("study %s: lease lost to another worker (or a new image arrived); result discarded", study.id)
        return None
    return result
