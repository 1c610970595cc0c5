"""What the Model page does with the closed loop, as verbs (screens reach storage only
through services)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from core.config import Settings
from core.model_card import ModelCard
from core.promotion import RULE, decide
from db import models as registry
from db import shadow
from services import retraining, shadow_runs


def versions(engine: Engine, settings: Settings) -> list[dict]:
    retraining.ensure_registered(engine, settings)
    return [
        {
            "name": m.name,
            "version": m.version,
            "status": m.status,
            "parent": m.parent_version,
            "created": m.created_at.isoformat(sep=" ", timespec="minutes"),
            "promoted by": m.promoted_by,
            "promoted": m.promoted_at.isoformat(sep=" ", timespec="minutes") if m.promoted_at else None,
        }
        for m in registry.list_models(engine)
    ]


def latest_job(engine: Engine) -> registry.Job | None:
    found = registry.jobs(engine, limit=1)
    return found[0] if found else None


def start_retraining(engine: Engine, actor: str) -> registry.Job:
    return registry.request_job(engine, actor)


def cancel_retraining(engine: Engine, job_id: int, actor: str) -> None:
    registry.cancel_job(engine, job_id, actor)


def comparison(engine: Engine, name: str) -> dict:
    """The candidate's card comparison (site held-out patients, the project's NIH test
    images), the gate's decision, and the shadow run's prospective cohort once read."""
    model = retraining.find_registered(engine, name)
    card = ModelCard.load(Path(model.folder))
    evaluation = card.evaluation or {}
    decision = decide(evaluation.get("site_comparison"))
    return {
        "name": card.name,
        "version": card.version,
        "status": str(model.status),
        "shadow_studies": shadow.count(engine, model.name),
        "prospective": shadow_runs.prospective_comparison(engine, model, card),
        "parent_version": retraining.site_retraining(card).get("parent_version"),
        "site_heldout": evaluation.get("site_comparison"),
        "reference_heldout": evaluation.get("reference_comparison"),
        "gate": {"rule": RULE, "passed": decision.passed, "reasons": decision.reasons},
    }


def start_shadow(engine: Engine, actor: str, name: str) -> registry.RegisteredModel:
    return shadow_runs.start(engine, name, actor)


def stop_shadow(engine: Engine, actor: str) -> registry.RegisteredModel | None:
    return shadow_runs.stop(engine, actor)


def promote(engine: Engine, actor: str, name: str, override: str | None) -> registry.RegisteredModel:
    return retraining.promote(engine, name, actor, override)


def rollback(engine: Engine, actor: str, name: str | None = None) -> registry.RegisteredModel:
    return retraining.rollback(engine, actor, name)
