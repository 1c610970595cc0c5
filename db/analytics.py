"""Load the cohort for analytics with the page's filters applied in SQL.

Reads the packed tables (one row per study, one per study and reviewer), so 100,000
studies are 100,000 rows, not 1.5 million. Packed rows are read in the label order the
caller asks for (the current model card's), whatever order they were written in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, and_, func, select, type_coerce

from core.cohort import Cohort, TruthRule, TruthSource, truth_from_finding_labels, truth_from_votes
from db.packing import unmask, unpack_floats
from db.schema import (
    ReferenceLabel,
    Study,
    StudyScores,
    StudyStatus,
    User,
    Verdict,
    VerdictSet,
)


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
    labels: tuple[str, ...]  # column order of every matrix below
    probs: np.ndarray  # (n, L); NaN where a study's row was written without that label
    thresholds: np.ndarray
    vote_pos: np.ndarray  # (m,) study position of each reviewer's verdict set
    vote_reviewer: np.ndarray
    vote_present: np.ndarray  # (m, L)
    vote_known: np.ndarray  # (m, L): False where the verdict set has no verdict for the label
    vote_adjudicator: np.ndarray  # (m,)

    def cohort(
        self, source: str = TruthSource.VERDICTS, rule: str = TruthRule.MAJORITY, chosen: int | None = None
    ) -> Cohort:
        n = len(self.meta)
        if TruthSource(source) is TruthSource.REFERENCE:
            truth = truth_from_finding_labels(list(self.meta["reference"]), self.labels)
        else:
            truth = truth_from_votes(
                self.vote_pos,
                self.vote_present,
                n,
                rule,
                self.vote_reviewer,
                chosen,
                self.vote_adjudicator,
                self.vote_known,
            )
        return Cohort(
            self.meta["id"].to_numpy(),
            self.probs,
            self.thresholds,
            truth,
            self.meta["groups"].to_numpy(),
            self.meta,
            tuple(self.labels),
        )


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


META = ["id", "original_name", "created_at", "view_position", "patient_sex", "patient_age", "patient_key", "reference"]


def load_cohort(engine: Engine, flt: CohortFilter, labels: tuple[str, ...], with_reference: bool = True) -> CohortData:
    """The selection as matrices in ``labels`` order (the current model card's labels)."""
    conds = _conditions(flt)
    ref = ReferenceLabel.finding_labels if with_reference else type_coerce(None, String)
    # two sequential reads joined here rather than one SQL join: the join visits the
    # scores in the studies' index order (random pages of a large file), twice as slow
    studies_q = (
        select(
            Study.id,
            Study.original_name,
            type_coerce(Study.created_at, String),
            Study.view_position,
            Study.patient_sex,
            Study.patient_age,
            Study.patient_key,
            ref,
            Study.model_version,
        )
        .where(and_(*conds))
        .order_by(Study.id)
    )
    if with_reference:
        studies_q = studies_q.outerjoin(ReferenceLabel, ReferenceLabel.image_index == Study.original_name)
    scores_q = select(
        StudyScores.study_id,
        StudyScores.model_version,
        StudyScores.probabilities,
        StudyScores.thresholds,
        StudyScores.labels,
    )
    if flt.model_version:
        scores_q = scores_q.where(StudyScores.model_version == flt.model_version)
    votes_q = (
        select(
            VerdictSet.study_id,
            VerdictSet.reviewer_id,
            VerdictSet.present_mask,
            VerdictSet.labels,
            VerdictSet.adjudication,
        )
        .join(Study, Study.id == VerdictSet.study_id)
        .where(and_(*conds))
    )
    if flt.reviewer_id is not None:
        votes_q = votes_q.where(VerdictSet.reviewer_id == int(flt.reviewer_id))
    with engine.connect() as conn:
        studies = _frame(_fetch(conn, studies_q), [*META, "model_version"])
        scores = _frame(_fetch(conn, scores_q), ["id", "model_version", "probabilities", "thresholds", "labels"])
        votes = _fetch(conn, votes_q)
    for part in (studies, scores):
        part["id"] = part["id"].astype(np.int64)
    frame = studies.merge(scores, on=["id", "model_version"], how="inner", sort=False)  # keeps the studies' order
    names = [*META, "probabilities", "thresholds", "labels"]
    meta = frame[names[:8]].copy()
    meta["id"] = meta["id"].astype(np.int64)
    meta["created_at"] = pd.to_datetime(meta["created_at"], format="ISO8601")
    meta["groups"] = meta["patient_key"].where(meta["patient_key"].notna(), "study-" + meta["id"].astype(str))
    keys = frame["labels"].tolist()
    probs = unpack_floats([bytes(b) for b in frame["probabilities"]], keys, labels)
    thresholds = unpack_floats([bytes(b) for b in frame["thresholds"]], keys, labels)
    vframe = _frame(votes, ["study_id", "reviewer_id", "mask", "labels", "adjudication"])
    pos = pd.Index(meta["id"]).get_indexer(vframe["study_id"].to_numpy(dtype=np.int64))
    keep = pos >= 0
    present, known = unmask(vframe["mask"].to_numpy(dtype=np.int64), vframe["labels"].tolist(), labels)
    return CohortData(
        meta,
        tuple(labels),
        probs,
        thresholds,
        pos[keep],
        vframe["reviewer_id"].to_numpy(dtype=np.int64)[keep],
        present[keep],
        known[keep],
        vframe["adjudication"].to_numpy(dtype=bool)[keep],
    )


def _fetch(conn, statement) -> list[tuple]:
    """The driver's own tuples. These columns need no result processing (ids, text, bytes,
    numbers; times read as text or the driver's datetimes), and building 100,000 SQLAlchemy
    Rows, then reading them back, cost more than the query itself."""
    result = conn.execute(statement)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _frame(rows: Sequence, names: list[str]) -> pd.DataFrame:
    """Driver tuples as a frame. (Handed SQLAlchemy Rows, pandas probes each for named-tuple
    attributes and every failed probe raises inside SQLAlchemy: 1.6 s of a 3.4 s load at
    100,000 studies.)"""
    return pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame(columns=names)


def data_stamp(engine: Engine) -> tuple[str, ...]:
    """Changes whenever anything analytics reads changes: a cache key for its figures."""
    with engine.connect() as conn:
        rows = (
            conn.execute(select(func.count(), func.max(VerdictSet.updated_at)).select_from(VerdictSet)).one(),
            conn.execute(
                select(func.count(), func.max(Study.processed_at)).where(Study.status == StudyStatus.DONE)
            ).one(),
            conn.execute(select(func.count(), func.max(ReferenceLabel.id)).select_from(ReferenceLabel)).one(),
        )
    return tuple(str(v) for row in rows for v in row)


def verdict_rows(engine: Engine, flt: CohortFilter) -> pd.DataFrame:
    """Every verdict row in the selection, with who and when (for the verdicts export)."""
    query = (
        select(
            Verdict.study_id,
            Study.original_name,
            Verdict.label,
            User.username.label("reviewer"),
            Verdict.flagged,
            Verdict.verdict,
            Verdict.present,
            Verdict.mark_x,
            Verdict.mark_y,
            Verdict.mark_image_id,
            Verdict.model_version,
            Verdict.created_at,
            Verdict.updated_at,
        )
        .join(Study, Study.id == Verdict.study_id)
        .join(User, User.id == Verdict.reviewer_id)
        .where(and_(*_conditions(flt)))
        .order_by(Verdict.study_id, Verdict.reviewer_id, Verdict.label)
    )
    if flt.reviewer_id is not None:
        query = query.where(Verdict.reviewer_id == flt.reviewer_id)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())
