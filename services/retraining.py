"""The model learns from the site's reads: retrain, compare, promote, roll back.

``retrain`` refits the current model's head on the features the worker kept for the
site's reviewed studies (training.site_head), writes a complete candidate model folder
(the parent's files, the new head, a card with its cohort, recipe, calibration,
thresholds and the paired comparison), and registers it as a candidate. It needs no image
and no TensorFlow. The folder is written under a temporary name and renamed when whole,
so a cancelled or failed run leaves nothing half-written. ``promote`` applies the gate
(core.promotion); ``rollback`` returns to an earlier version. After either, the studies
no one has read yet are analysed again by the new current model; read ones keep what
their readers saw.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from core.config import Settings
from core.linear_head import LinearHead, per_study_max
from core.model_card import ModelCard, file_sha256
from core.promotion import RULE, GateDecision, decide
from db import models as registry
from db.queue import requeue_unread
from db.results import stored_features
from db.schema import utcnow
from services.site_labels import site_cohort
from training.compare_models import compare
from training.head_weights import read_head, write_head
from training.reference_features import FILE_NAME as REFERENCE_FEATURES
from training.site_cohort import Part, SiteLabels
from training.site_head import fit_site_head


class Cancelled(Exception):
    """An admin cancelled the job; nothing was written."""


Progress = Callable[[float, str], bool]  # (fraction, message) -> True when cancel was asked


@dataclass(frozen=True)
class RetrainResult:
    folder: Path
    card: ModelCard
    gate: GateDecision


def site_retraining(card: ModelCard) -> dict:
    """What a candidate's card says of its retraining (parent, cohort, recipe); empty for a
    model that was not retrained on a site's reads."""
    return (card.training or {}).get("site_retraining", {})


def current_model_dir(engine: Engine, settings: Settings) -> Path:
    """The folder of the registered current model, else the configured one (CXR_MODEL)."""
    current = registry.current_model(engine)
    return Path(current.folder) if current else Path(settings.model_dir)


def ensure_registered(engine: Engine, settings: Settings) -> registry.RegisteredModel:
    """The running model in the registry (the configured folder becomes current the first time)."""
    current = registry.current_model(engine)
    if current is not None:
        return current
    card = ModelCard.load(settings.model_dir)
    return registry.register(
        engine, card.name, card.version, str(Path(settings.model_dir).resolve()), registry.ModelStatus.CURRENT, "system"
    )


def _study_rows(site: SiteLabels, feats, which: Part) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features of every image, its study's truth, its study's row in ``site``) of one part."""
    in_part = set(site.part(which).tolist())
    position = {int(sid): r for r, sid in enumerate(site.study_ids)}
    study_row = np.array([position.get(int(s), -1) for s in feats.study_ids], dtype=int)
    keep = np.array([r in in_part for r in study_row], dtype=bool)
    return feats.features[keep].astype(np.float64), site.truth[study_row[keep]], study_row[keep]


def _study_scores(x: np.ndarray, study_row: np.ndarray, kernel, bias, calibration: dict, labels) -> tuple:
    """Calibrated per-study probabilities: each image through the head, the study's maximum
    over its images (as the worker does), rows in first-seen study order."""
    probs = LinearHead(kernel, bias, calibration, labels).probabilities(x)
    per_study, rows = per_study_max(probs, study_row)
    return per_study, rows.tolist()


def _paired(x, study_row, truth, groups, parent: ModelCard, kernel, bias, head, labels) -> dict:
    """Current and candidate scored from the same features, compared on the same studies."""
    current, order = _study_scores(x, study_row, kernel, bias, parent.calibration, labels)
    candidate, _ = _study_scores(x, study_row, head.kernel, head.bias, head.calibration, labels)
    thresholds = [np.array([t[label] for label in labels]) for t in (parent.thresholds, head.thresholds)]
    return compare(labels, truth[order], current, candidate, thresholds[0], thresholds[1], groups[order])


def retrain(
    engine: Engine, settings: Settings, out: Path, actor: str = "cli", progress: Progress | None = None
) -> RetrainResult:
    """Fit a candidate on the site's reads and write it to ``out`` (a new folder)."""
    report = progress or (lambda fraction, message: False)

    def step(fraction: float, message: str) -> None:
        if report(fraction, message):
            raise Cancelled(message)

    out = Path(out).resolve()
    if out.exists():
        raise ValueError(f"{out} exists: a candidate is written to a new folder")
    ensure_registered(engine, settings)  # the parent is in the registry, so a rollback can return to it
    parent_dir = current_model_dir(engine, settings)
    parent = ModelCard.load(parent_dir)
    labels = tuple(parent.labels)
    step(0.05, "reading the site's labels")
    site = site_cohort(engine, parent.version, labels)
    feats = stored_features(engine, parent.version, [int(i) for i in site.study_ids])
    if len(feats.instance_ids) == 0:
        raise ValueError(f"no reviewed study with kept features for model {parent.version}: read some studies first")
    kernel, bias = read_head(parent_dir / parent.weights_file, len(labels))
    train, val, test = (_study_rows(site, feats, part) for part in (Part.TRAIN, Part.VALIDATION, Part.TEST))
    step(0.15, f"fitting the head on {len(site.part(Part.TRAIN))} training studies")
    head = fit_site_head(labels, kernel, bias, train[:2], val[:2])
    step(0.7, "comparing with the current model on held-out site patients")
    comparison = _compare_on(test, site, parent, kernel, bias, head, labels)
    reference = _compare_reference(parent_dir, parent, kernel, bias, head, labels)
    gate = decide(comparison)
    step(0.85, "writing the candidate folder")
    name = f"{parent.name}-site-{utcnow():%Y%m%d-%H%M%S}"
    tmp = out.parent / f".tmp-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(parent_dir, tmp, ignore=shutil.ignore_patterns(parent.weights_file, "model_card.json"))
        write_head(parent_dir / parent.weights_file, tmp / parent.weights_file, head.kernel, head.bias)
        card = replace(
            parent,
            name=name,
            weights_sha256=file_sha256(tmp / parent.weights_file),
            calibration=head.calibration,
            thresholds=head.thresholds,
            threshold_support=head.threshold_support,
            threshold_method="site validation patients: highest threshold with sensitivity >= 0.80 after Platt scaling",
            training={
                **parent.training,
                "site_retraining": {
                    "parent_name": parent.name,
                    "parent_version": parent.version,
                    "recipe": "head refit on kept identity-view features, parent logit an input (training.site_head)",
                    "cohort_counts": site.counts(),
                    "cohort_study_ids": {p.value: site.study_ids[site.part(p)].tolist() for p in Part},
                    "labels": [f.as_dict() for f in head.fits],
                },
            },
            evaluation={
                **parent.evaluation,
                "site_comparison": comparison,
                "reference_comparison": reference,
                "gate": {"rule": RULE, "passed": gate.passed, "reasons": gate.reasons},
            },
            created_at=utcnow().isoformat(timespec="seconds"),
        )
        card.save(tmp)
        ModelCard.load(tmp)  # the folder is complete and consistent before it gets its name
        step(0.95, "registering the candidate")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = {"comparison": comparison, "reference": reference, "gate": asdict(gate), "counts": site.counts()}
    registry.register(
        engine, name, card.version, str(out), registry.ModelStatus.CANDIDATE, actor, parent.version, _plain(summary)
    )
    return RetrainResult(out, card, gate)


def _compare_on(part_rows, site: SiteLabels, parent: ModelCard, kernel, bias, head, labels) -> dict | None:
    x, _, study_row = part_rows
    if len(x) == 0:
        return None
    return _paired(x, study_row, site.truth, site.groups, parent, kernel, bias, head, labels)


def _compare_reference(parent_dir: Path, parent: ModelCard, kernel, bias, head, labels) -> dict | None:
    """The same comparison on the project's own held-out NIH test images (nothing forgotten),
    from the features kept beside the parent model, when the folder has them."""
    path = parent_dir / REFERENCE_FEATURES
    if not path.is_file():
        return None
    data = np.load(path, allow_pickle=False)
    x = data["features"].astype(np.float64)
    return _paired(x, np.arange(len(x)), data["truth"], data["groups"], parent, kernel, bias, head, labels)


def _plain(value):
    """JSON-safe (numpy scalars and NaN become plain values)."""
    return json.loads(json.dumps(value, default=float), parse_constant=lambda _: None)


def find_registered(engine: Engine, name: str) -> registry.RegisteredModel:
    """A registered model by its name or its folder (as given or resolved); a clear error if none."""
    found = registry.find_model(engine, name) or registry.find_model(engine, str(Path(name).resolve()))
    if found is None:
        raise ValueError(f"no registered model {name!r}")
    return found


def promote(engine: Engine, name: str, actor: str, override: str | None = None) -> registry.RegisteredModel:
    """Make a candidate current if it passes the gate, or with an audited override reason."""
    model = find_registered(engine, name)
    card = ModelCard.load(Path(model.folder))
    decision = decide((card.evaluation or {}).get("site_comparison"))
    if not decision.passed and not override:
        raise PermissionError("the promotion gate refuses it: " + "; ".join(decision.reasons))
    detail = {"gate_passed": decision.passed, "gate_reasons": decision.reasons}
    if override and not decision.passed:
        detail["override"] = override[:300]
    promoted = registry.make_current(engine, model.name, actor, "model_promoted", **detail)
    requeue_unread(engine, actor)
    return promoted


def rollback(engine: Engine, actor: str, name: str | None = None) -> registry.RegisteredModel:
    """Return to ``name``, or to the model that was current before this one."""
    models = registry.list_models(engine)
    if name is None:
        earlier = [m for m in models if m.status == registry.ModelStatus.RETIRED and m.promoted_at is not None]
        if not earlier:
            raise ValueError("no earlier model to roll back to")
        name = max(earlier, key=lambda m: m.promoted_at or datetime.min).name
    target = find_registered(engine, name)
    ModelCard.load(Path(target.folder))  # the folder is still there and whole
    restored = registry.make_current(engine, target.name, actor, "model_rolled_back")
    requeue_unread(engine, actor)
    return restored
