"""A study's analysis results: predictions, heatmap rows, the packed study_scores row,
and the threshold sets they are made with. ``store_results`` is the only writer of these
tables; the worker and the benchmarks' seeding both call it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from db import audit, pacs_result_jobs
from db.packing import label_key, pack_floats
from db.schema import (
    Heatmap,
    ImageFeatures,
    Prediction,
    Study,
    StudyScores,
    StudyStatus,
    ThresholdSet,
    utcnow,
)
from db.session import affected, run_write


@dataclass(frozen=True)
class StudyResult:
    """What the worker stores for one analysed study (one model version)."""

    study_id: int
    model_name: str
    model_version: str
    labels: tuple[str, ...]  # the model card's order; the packed row records it
    probabilities: dict[str, float]
    spread: dict[str, float]
    thresholds: dict[str, float]
    threshold_version: str
    flagged: frozenset[str]
    tta_views: int
    triage_score: float
    priority: float
    abnormal: float | None = None
    in_domain: bool | None = None
    domain_score: float | None = None
    heatmap_files: dict[str, str] = field(default_factory=dict)  # label -> path in the data folder
    heatmap_instances: dict[str, int] = field(default_factory=dict)  # label -> image the map was computed on
    features: dict[int, bytes] = field(default_factory=dict)  # analysed image -> float16 pooled trunk features
    for_pacs: bool = False  # a DICOM study with a PACS to send to: its result objects are to be built


def store_results(session: Session, results: Sequence[StudyResult], worker_id: str | None) -> list[int]:
    """Write results inside the caller's transaction; returns the ids written.

    With a ``worker_id`` each study is fenced on its lease (a study whose lease was lost
    is skipped, its result discarded); without one (seeding a benchmark database) the
    studies are marked done directly. Earlier rows of the same model version are replaced.
    """
    written = []
    for r in results:
        for table in (Prediction, Heatmap, StudyScores, ImageFeatures):  # a requeued study's new results replace them
            session.execute(delete(table).where(table.study_id == r.study_id, table.model_version == r.model_version))
        fence = [Study.lease_owner == worker_id, Study.status == StudyStatus.PROCESSING] if worker_id else []
        done = session.execute(
            update(Study)
            .where(Study.id == r.study_id, *fence)
            .values(
                status=StudyStatus.DONE,
                lease_owner=None,
                lease_expires_at=None,
                error=None,
                processed_at=utcnow(),
                model_version=r.model_version,
                triage_score=r.triage_score,
                priority=r.priority,
                abnormal=r.abnormal,
                in_domain=r.in_domain,
                domain_score=r.domain_score,
            )
        )
        if affected(done) == 1:
            written.append(r)
    if not written:
        return []
    session.execute(
        insert(Prediction),
        [
            {
                "study_id": r.study_id,
                "label": lab,
                "probability": r.probabilities[lab],
                "spread": r.spread[lab],
                "threshold": r.thresholds[lab],
                "flagged": lab in r.flagged,
                "model_name": r.model_name,
                "model_version": r.model_version,
                "threshold_version": r.threshold_version,
                "tta_views": r.tta_views,
                "created_at": utcnow(),
            }
            for r in written
            for lab in r.labels
        ],
    )
    heatmaps = [
        {
            "study_id": r.study_id,
            "label": lab,
            "model_version": r.model_version,
            "path": path,
            "instance_id": r.heatmap_instances.get(lab),  # the overlay is drawn on, and cites, this image
            "created_at": utcnow(),
        }
        for r in written
        for lab, path in r.heatmap_files.items()
    ]
    if heatmaps:
        session.execute(insert(Heatmap), heatmaps)
    features = [
        {
            "instance_id": instance_id,
            "study_id": r.study_id,
            "model_version": r.model_version,
            "dim": len(blob) // 2,
            "features": blob,
            "created_at": utcnow(),
        }
        for r in written
        for instance_id, blob in r.features.items()
    ]
    if features:
        session.execute(insert(ImageFeatures), features)
    session.execute(
        insert(StudyScores),
        [
            {
                "study_id": r.study_id,
                "model_version": r.model_version,
                "labels": label_key(r.labels),
                "probabilities": pack_floats(r.probabilities, r.labels),
                "thresholds": pack_floats(r.thresholds, r.labels),
            }
            for r in written
        ],
    )
    for r in written:
        if r.for_pacs:  # with the results, never after them: the PACS service cannot miss one
            pacs_result_jobs.record(session, r.study_id, r.model_version)
    return [r.study_id for r in written]


def active_thresholds(engine: Engine, model_version: str) -> tuple[dict[str, float], str] | None:
    """The admin-saved threshold set in force for this model version, if any."""
    with engine.connect() as conn:
        row = conn.execute(
            select(ThresholdSet.thresholds, ThresholdSet.version)
            .where(ThresholdSet.model_version == model_version, ThresholdSet.active.is_(True))
            .order_by(ThresholdSet.id.desc())
            .limit(1)
        ).first()
    return ({k: float(v) for k, v in row[0].items()}, row[1]) if row else None


def threshold_version_of(thresholds: dict[str, float]) -> str:
    return hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()[:12]


def save_threshold_set(
    engine: Engine, model_version: str, thresholds: dict[str, float], method: str, user_id: int, actor: str
) -> str:
    """Make ``thresholds`` the active set for new predictions of this model version (audited)."""
    version = threshold_version_of(thresholds)

    def work(session: Session) -> str:
        session.execute(update(ThresholdSet).where(ThresholdSet.model_version == model_version).values(active=False))
        existing = session.execute(select(ThresholdSet).where(ThresholdSet.version == version)).scalar_one_or_none()
        if existing is None:
            session.add(
                ThresholdSet(
                    version=version,
                    model_version=model_version,
                    thresholds=thresholds,
                    method=method,
                    active=True,
                    created_by=user_id,
                )
            )
        else:
            existing.active = True
        audit.record(
            session,
            "thresholds_changed",
            actor,
            None,
            version=version,
            model_version=model_version,
            method=method,
            thresholds=thresholds,
        )
        return version

    return run_write(engine, work)


@dataclass(frozen=True)
class StoredPrediction:
    label: str
    probability: float
    threshold: float
    flagged: bool


@dataclass(frozen=True)
class StoredHeatmap:
    label: str
    path: str
    instance_id: int | None


@dataclass(frozen=True)
class StoredResults:
    """A study's current results as the worker stored them (model card order)."""

    study_id: int
    study_instance_uid: str | None
    model_name: str
    model_version: str
    in_domain: bool | None
    domain_score: float | None
    abnormal: float | None
    predictions: list[StoredPrediction]
    heatmaps: list[StoredHeatmap]


def stored_results(engine: Engine, study_id: int) -> StoredResults | None:
    with engine.connect() as conn:
        study = conn.execute(
            select(
                Study.study_instance_uid, Study.model_version, Study.in_domain, Study.domain_score, Study.abnormal
            ).where(Study.id == study_id, Study.status == StudyStatus.DONE)
        ).first()
        if study is None:
            return None
        rows = conn.execute(
            select(
                Prediction.label,
                Prediction.probability,
                Prediction.threshold,
                Prediction.flagged,
                Prediction.model_name,
            )
            .where(Prediction.study_id == study_id, Prediction.model_version == study.model_version)
            .order_by(Prediction.id)
        ).all()
        maps = conn.execute(
            select(Heatmap.label, Heatmap.path, Heatmap.instance_id)
            .where(Heatmap.study_id == study_id, Heatmap.model_version == study.model_version)
            .order_by(Heatmap.id)
        ).all()
    return StoredResults(
        study_id,
        study.study_instance_uid,
        rows[0].model_name if rows else "",
        study.model_version,
        study.in_domain,
        study.domain_score,
        study.abnormal,
        [StoredPrediction(r.label, float(r.probability), float(r.threshold), bool(r.flagged)) for r in rows],
        [StoredHeatmap(*m) for m in maps],
    )


@dataclass(frozen=True)
class StoredFeatures:
    """Every analysed image's features under one model version, one row per image."""

    instance_ids: np.ndarray  # (N,) int
    study_ids: np.ndarray  # (N,) int
    features: np.ndarray  # (N, K) float16


def stored_features(engine: Engine, model_version: str, study_ids: Sequence[int] | None = None) -> StoredFeatures:
    """The features the worker kept for ``model_version`` (optionally only these studies)."""
    query = select(ImageFeatures.instance_id, ImageFeatures.study_id, ImageFeatures.features).where(
        ImageFeatures.model_version == model_version
    )
    if study_ids is not None:
        query = query.where(ImageFeatures.study_id.in_([int(i) for i in study_ids]))  # numpy ints bind as blobs
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(ImageFeatures.instance_id)).all()
    if not rows:
        return StoredFeatures(np.zeros(0, int), np.zeros(0, int), np.zeros((0, 0), np.float16))
    return StoredFeatures(
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.stack([np.frombuffer(r[2], dtype="<f2") for r in rows]),
    )
