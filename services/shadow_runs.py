"""Shadow runs: a candidate runs beside the current model on new studies.

Its results are stored (``db.shadow``) but never shown to readers and never used for
triage; once readers have read those studies, the comparison adds this prospective cohort
(studies that arrived after the candidate was trained, so none of them shaped it).

A candidate made by ``cxr retrain`` differs from its parent in the head only, so it runs
in shadow from the features the worker already computed for the current model, at the cost
of one matrix product per image and no second forward pass. A candidate whose parent is not
the current model reads another feature space and cannot run in shadow; starting one is
refused with that reason, and a shadow run left behind by a promotion or rollback is
skipped until it is started again on a matching parent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from core.linear_head import LinearHead, per_study_max
from core.model_card import ModelCard
from db import models as registry
from db import shadow
from db.results import stored_features
from services.retraining import find_registered, site_retraining
from services.site_labels import site_cohort
from training.compare_models import compare
from training.head_weights import read_head

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowScorer:
    name: str
    parent_version: str
    head: LinearHead


def start(engine: Engine, name: str, actor: str) -> registry.RegisteredModel:
    """Run the named candidate in shadow (refused unless it was trained from the current model)."""
    model = find_registered(engine, name)
    current = registry.current_model(engine)
    card = ModelCard.load(Path(model.folder))
    if current is None or site_retraining(card).get("parent_version") != current.version:
        raise ValueError(
            f"{model.name} was not trained from the current model ({current.version if current else 'none'}): "
            "it reads other features and cannot run in shadow"
        )
    started = registry.set_shadow(engine, model.name, actor)
    assert started is not None
    return started


def stop(engine: Engine, actor: str) -> registry.RegisteredModel | None:
    return registry.set_shadow(engine, None, actor)


class ShadowScorers:
    """The worker's view of the shadow run: the registered shadow model's head, loaded
    once and reloaded only when another model is put in shadow."""

    def __init__(self) -> None:
        self._loaded: ShadowScorer | None = None

    def get(self, engine: Engine, current_version: str) -> ShadowScorer | None:
        model = registry.shadow_model(engine)
        if model is None:
            return None
        if self._loaded is None or self._loaded.name != model.name:
            card = ModelCard.load(Path(model.folder))
            kernel, bias = read_head(Path(model.folder) / card.weights_file, len(card.labels))
            parent = site_retraining(card).get("parent_version") or ""
            self._loaded = ShadowScorer(model.name, parent, LinearHead(kernel, bias, card.calibration, card.labels))
        if self._loaded.parent_version != current_version:
            return None  # another model is current now: its features are not this head's input
        return self._loaded


def record(
    engine: Engine, scorer: ShadowScorer, current_version: str, study_id: int, features: Sequence[tuple[int, bytes]]
) -> None:
    """Score one study's images with the shadow head from the features just stored for the
    current model (the same float16 values the comparison reads back)."""
    if not features:
        return
    x = np.stack([np.frombuffer(raw, dtype="<f2") for _, raw in features])
    probs = scorer.head.probabilities(x)
    shadow.store(engine, scorer.name, current_version, study_id, [(iid, p) for (iid, _), p in zip(features, probs)])


def prospective_comparison(engine: Engine, model: registry.RegisteredModel, card: ModelCard) -> dict | None:
    """The shadow model (``model``, its ``card``) against the current one on the studies it
    ran on that readers have since read completely (their labels as the analytics use
    them): both scored on the same images, the current model from its kept features with
    its own head, the shadow model from what it stored during the run. None until some of
    those studies are read."""
    info = site_retraining(card)
    parent_version = info.get("parent_version")
    rows = shadow.scores(engine, model.name)
    if parent_version is None or len(rows.instance_ids) == 0:
        return None
    labels = tuple(card.labels)
    site = site_cohort(engine, parent_version, labels)
    cohort = info.get("cohort_study_ids", {})
    trained_on = set(cohort.get("train", [])) | set(cohort.get("validation", []))
    position = {int(s): i for i, s in enumerate(site.study_ids)}
    keep = np.array([int(s) in position and int(s) not in trained_on for s in rows.study_ids], dtype=bool)
    if not keep.any():
        return None
    feats = stored_features(engine, parent_version, sorted({int(s) for s in rows.study_ids[keep]}))
    by_instance = {int(i): k for k, i in enumerate(feats.instance_ids)}
    keep &= np.array([int(i) in by_instance for i in rows.instance_ids], dtype=bool)
    if not keep.any():
        return None
    x = feats.features[[by_instance[int(i)] for i in rows.instance_ids[keep]]]
    parent_dir = _parent_folder(engine, parent_version)
    parent = ModelCard.load(parent_dir)
    kernel, bias = read_head(parent_dir / parent.weights_file, len(labels))
    current = LinearHead(kernel, bias, parent.calibration, labels).probabilities(x)
    current_study, keys = per_study_max(current, rows.study_ids[keep])
    shadow_study, _ = per_study_max(rows.probabilities[keep].astype(np.float64), rows.study_ids[keep])
    study_rows = np.array([position[int(k)] for k in keys])
    out = compare(
        labels,
        site.truth[study_rows],
        current_study,
        shadow_study,
        np.array([parent.thresholds[label] for label in labels]),
        np.array([card.thresholds[label] for label in labels]),
        site.groups[study_rows],
    )
    out["cohort"] = "prospective: studies analysed while the model ran in shadow, read since, none used to fit it"
    return out


def _parent_folder(engine: Engine, version: str) -> Path:
    found = [m for m in registry.list_models(engine) if m.version == version]
    if not found:
        raise ValueError(f"the parent model {version} is not registered")
    return Path(found[0].folder)
