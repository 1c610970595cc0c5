"""Load the cohort for analytics with the page's filters applied in SQL.

Reads the packed tables (one row per study, one per study and reviewer), so 100,000
studies are 100,000 rows, not 1.5 million.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, and_, select, type_coerce

from core.cohort import Cohort, truth_from_finding_labels, truth_from_votes
from db.packing import unmask, unpack_floats
from db.schema import ReferenceLabel, Study, StudyScores, StudyStatus, User, VerdictSet


@dataclass(frozen=True)
class CohortFilter:
    date_from: datetime | None = None
    date_to: datetime | None = None
    model_version: str | None = None
    reviewer_id: int | None = None
    view_position: str | None = None


@dataclass
class CohortData:
    meta: pd.DataFrame  # id, original_name, created_at, view_position, patient_sex, patient_age, groups, reference
    probs: np.ndarray
    thresholds: np.ndarray
    vote_pos: np.ndarray  # (m,) study position of each reviewer's verdict set
    vote_reviewer: np.ndarray
    vote_present: np.ndarray  # (m, 15)
    vote_adjudicator: np.ndarray  # (m,)

    def cohort(self, source: str = "verdicts", rule: str = "majority", chosen: int | None = None) -> Cohort:
        n = len(self.meta)
        if source == "reference":
            truth = truth_from_finding_labels(list(self.meta["reference"]))
        else:
            truth = truth_from_votes(self.vote_pos, self.vote_present, n, rule, self.vote_reviewer, chosen,
                                     self.vote_adjudicator)
        return Cohort(self.meta["id"].to_numpy(), self.probs, self.thresholds, truth,
                      self.meta["groups"].to_numpy(), self.meta)


def _conditions(flt: CohortFilter) -> list:
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


def _raw_rows(conn, stmt) -> list[tuple]:
    """Plain tuples straight from the driver (no per-row Row objects or type processing).

    The statement is compiled with literal values: every value comes from typed filter
    fields (dates, a version string, an id), rendered and quoted by the dialect itself.
    """
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


def load_cohort(engine: Engine, flt: CohortFilter, with_reference: bool = True) -> CohortData:
    conds = _conditions(flt)
    ref = ReferenceLabel.finding_labels if with_reference else type_coerce(None, String)
    query = (select(Study.id, Study.original_name, type_coerce(Study.created_at, String), Study.view_position,
                    Study.patient_sex, Study.patient_age, Study.patient_key, ref,
                    StudyScores.probabilities, StudyScores.thresholds)
             .join(StudyScores, and_(StudyScores.study_id == Study.id, StudyScores.model_version == Study.model_version))
             .where(and_(*conds)))
    if with_reference:
        query = query.outerjoin(ReferenceLabel, ReferenceLabel.image_index == Study.original_name)
    votes_q = (select(VerdictSet.study_id, VerdictSet.reviewer_id, VerdictSet.present_mask, User.role)
               .join(Study, Study.id == VerdictSet.study_id).join(User, User.id == VerdictSet.reviewer_id)
               .where(and_(*conds)))
    if flt.reviewer_id is not None:
        votes_q = votes_q.where(VerdictSet.reviewer_id == int(flt.reviewer_id))
    with engine.connect() as conn:
        rows = _raw_rows(conn, query)
        votes = _raw_rows(conn, votes_q)
    names = ["id", "original_name", "created_at", "view_position", "patient_sex", "patient_age", "patient_key",
             "reference", "probabilities", "thresholds"]
    frame = pd.DataFrame.from_records(rows, columns=names)
    meta = frame[names[:8]].copy()
    meta["id"] = meta["id"].astype(np.int64)
    meta["created_at"] = pd.to_datetime(meta["created_at"], format="ISO8601")
    meta["groups"] = meta["patient_key"].where(meta["patient_key"].notna(), "study-" + meta["id"].astype(str))
    probs = unpack_floats([bytes(b) for b in frame["probabilities"]])
    thresholds = unpack_floats([bytes(b) for b in frame["thresholds"]])
    vframe = pd.DataFrame.from_records(votes, columns=["study_id", "reviewer_id", "mask", "role"])
    pos = pd.Index(meta["id"]).get_indexer(vframe["study_id"].to_numpy(dtype=np.int64))
    keep = pos >= 0
    return CohortData(meta, probs, thresholds, pos[keep], vframe["reviewer_id"].to_numpy(dtype=np.int64)[keep],
                      unmask(vframe["mask"].to_numpy(dtype=np.int64))[keep],
                      (vframe["role"] == "admin").to_numpy()[keep])


def model_versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [v for v in conn.execute(select(Study.model_version).distinct()).scalars() if v]
