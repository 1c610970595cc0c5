"""Load the cohort for analytics as data frames, with the page's filters applied in SQL."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, and_, select

from db.schema import Prediction, ReferenceLabel, Study, StudyStatus, User, Verdict


@dataclass(frozen=True)
class CohortFilter:
    date_from: datetime | None = None
    date_to: datetime | None = None
    model_version: str | None = None
    reviewer_id: int | None = None
    view_position: str | None = None


@dataclass
class Cohort:
    studies: pd.DataFrame  # id, original_name, created_at, view_position, patient_sex, patient_age, patient_key
    predictions: pd.DataFrame  # study_id, label, probability, threshold, model_version
    verdicts: pd.DataFrame  # study_id, label, reviewer_id, present, verdict
    reference: pd.DataFrame  # study_id, finding_labels, patient_id
    adjudicators: set[int]


def _study_conditions(flt: CohortFilter) -> list:
    conds = [Study.status == StudyStatus.DONE]
    if flt.date_from:
        conds.append(Study.created_at >= flt.date_from)
    if flt.date_to:
        conds.append(Study.created_at <= flt.date_to)
    if flt.model_version:
        conds.append(Study.model_version == flt.model_version)
    if flt.view_position:
        conds.append(Study.view_position == flt.view_position)
    return conds


def _frame(engine: Engine, query, columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=columns)


def load_cohort(engine: Engine, flt: CohortFilter) -> Cohort:
    conds = _study_conditions(flt)
    studies = _frame(engine, select(Study.id, Study.original_name, Study.created_at, Study.view_position,
                                    Study.patient_sex, Study.patient_age, Study.patient_key, Study.model_version)
                     .where(and_(*conds)),
                     ["id", "original_name", "created_at", "view_position", "patient_sex", "patient_age",
                      "patient_key", "model_version"])
    preds = _frame(engine, select(Prediction.study_id, Prediction.label, Prediction.probability, Prediction.threshold)
                   .join(Study, and_(Study.id == Prediction.study_id, Study.model_version == Prediction.model_version))
                   .where(and_(*conds)), ["study_id", "label", "probability", "threshold"])
    vq = (select(Verdict.study_id, Verdict.label, Verdict.reviewer_id, Verdict.present, Verdict.verdict)
          .join(Study, Study.id == Verdict.study_id).where(and_(*conds)))
    if flt.reviewer_id is not None:
        vq = vq.where(Verdict.reviewer_id == flt.reviewer_id)
    verdicts = _frame(engine, vq, ["study_id", "label", "reviewer_id", "present", "verdict"])
    reference = _frame(engine, select(Study.id, ReferenceLabel.finding_labels, ReferenceLabel.patient_id)
                       .join(ReferenceLabel, ReferenceLabel.image_index == Study.original_name)
                       .where(and_(*conds)), ["study_id", "finding_labels", "patient_id"])
    admins = _frame(engine, select(User.id).where(User.role == "admin"), ["id"])
    return Cohort(studies, preds, verdicts, reference, set(admins["id"]))


def model_versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [v for v in conn.execute(select(Study.model_version).distinct()).scalars() if v]
