"""Load the cohort for analytics with the page's filters applied in SQL.

Reads the packed tables (one row per study, one per study and reviewer), so 100,000
studies are 100,000 rows, not 1.5 million. Packed rows are read in the label order the
caller asks for (the current model card's), whatever order they were written in.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, and_, func, select, type_coerce

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
    meta: pd.DataFrame  # id, patient_key, reference, groups (the rest of a study: study_details)
    labels: tuple[str, ...]  # column order of every matrix below
    probs: np.ndarray  # (n, L); NaN where a study's row was written without that label
    thresholds: np.ndarray
    vote_pos: np.ndarray  # (m,) study position of each reviewer's verdict set
    vote_reviewer: np.ndarray
    vote_present: np.ndarray  # (m, L)
    vote_known: np.ndarray  # (m, L): False where the verdict set has no verdict for the label
    vote_adjudicator: np.ndarray  # (m,)


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


META = ["id", "patient_key", "reference"]
DETAILS = ["id", "original_name", "created_at", "view_position", "patient_sex", "patient_age"]


def load_cohort(engine: Engine, flt: CohortFilter, labels: tuple[str, ...], with_reference: bool = True) -> CohortData:
    """The selection as matrices in ``labels`` order (the current model card's labels).

    Three plain reads joined here, not in SQL (measured at 100,000 studies on SQLite): the
    studies in id order by scanning the table, their status read as a column and filtered
    here (nearly every study is done, so the status index only adds a random lookup per
    row: 0.5 s against 0.2 s); the scores; and the verdict sets of the selected id range,
    matched to the studies by id (a join back to the studies for their status cost 0.5 s).
    Only what the figures need is read; a study's name, time, view, sex and age are read
    when a tab shows them (:func:`study_details`).
    """
    ref = ReferenceLabel.finding_labels if with_reference else type_coerce(None, String)
    studies_q = select(Study.id, Study.patient_key, ref, Study.model_version, Study.status).order_by(Study.id)
    if conds := _conditions(flt)[1:]:  # all but the status, which is filtered below
        studies_q = studies_q.where(and_(*conds))
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
    with engine.connect() as conn, collection_paused():
        studies = [row for row in _fetch(conn, studies_q) if row[-1] == StudyStatus.DONE]
        scores = _fetch(conn, scores_q)
        votes = _fetch(conn, _votes_query(flt, studies[0][0], studies[-1][0])) if studies else []
    with collection_paused():
        return _cohort_data(studies, scores, votes, labels)


def _cohort_data(studies: list[tuple], scores: list[tuple], votes: list[tuple], labels: tuple[str, ...]) -> CohortData:
    study_cols = _columns(studies, len(META) + 2)
    score_cols = _columns(scores, 5)
    at = _scores_row(study_cols[0], study_cols[len(META)], score_cols[0], score_cols[1])
    keep = np.flatnonzero(at >= 0)
    at = at[keep]
    meta = pd.DataFrame({name: _take(col, keep) for name, col in zip(META, study_cols, strict=False)})
    meta["id"] = meta["id"].astype(np.int64)
    meta["groups"] = meta["patient_key"].where(meta["patient_key"].notna(), "study-" + meta["id"].astype(str))
    keys = _take(score_cols[4], at)
    probs = unpack_floats(_take(score_cols[2], at), keys, labels)
    thresholds = unpack_floats(_take(score_cols[3], at), keys, labels)
    vote_cols = _columns(votes, 5)
    pos = pd.Index(meta["id"]).get_indexer(np.asarray(vote_cols[0], dtype=np.int64))
    kept = pos >= 0
    present, known = unmask(np.asarray(vote_cols[2], dtype=np.int64), list(vote_cols[3]), labels)
    return CohortData(
        meta,
        tuple(labels),
        probs,
        thresholds,
        pos[kept],
        np.asarray(vote_cols[1], dtype=np.int64)[kept],
        present[kept],
        known[kept],
        np.asarray(vote_cols[4], dtype=bool)[kept],
    )


def _scores_row(study_ids: tuple, study_versions: tuple, score_ids: tuple, score_versions: tuple) -> np.ndarray:
    """Each study's row in the scores for the model version that analysed it, -1 where it
    has none (an inner join on id and version). One scores row per study is the usual
    case and is matched on the id alone; studies scored by several versions use both."""
    ids = pd.Index(np.asarray(score_ids, dtype=np.int64))
    if ids.is_unique:
        at = ids.get_indexer(np.asarray(study_ids, dtype=np.int64))
        found = at >= 0
        wrong = np.asarray(study_versions, dtype=object)[found] != np.asarray(score_versions, dtype=object)[at[found]]
        at[np.flatnonzero(found)[wrong]] = -1
        return at
    keys = pd.MultiIndex.from_arrays([ids, score_versions])
    return keys.get_indexer(pd.MultiIndex.from_arrays([np.asarray(study_ids, dtype=np.int64), study_versions]))


def study_details(engine: Engine, ids: np.ndarray) -> pd.DataFrame:
    """Name, upload time, view, sex and age of the studies ``ids`` (in that order), for the
    tabs that show them. One scan of the id range, kept here by id (as load_cohort)."""
    ids = np.asarray(ids, dtype=np.int64)
    if not ids.size:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in DETAILS})
    query = (
        select(
            Study.id,
            Study.original_name,
            type_coerce(Study.created_at, String),
            Study.view_position,
            Study.patient_sex,
            Study.patient_age,
        )
        .where(Study.id.between(int(ids.min()), int(ids.max())))
        .order_by(Study.id)
    )
    with engine.connect() as conn, collection_paused():
        cols = _columns(_fetch(conn, query), len(DETAILS))
    with collection_paused():
        at = pd.Index(np.asarray(cols[0], dtype=np.int64)).get_indexer(ids)
        details = pd.DataFrame({name: _take(col, at[at >= 0]) for name, col in zip(DETAILS, cols, strict=True)})
    details["id"] = details["id"].astype(np.int64)
    details["created_at"] = pd.to_datetime(details["created_at"], format="ISO8601")
    return details


def _votes_query(flt: CohortFilter, first_id: int, last_id: int):
    """Every reader's packed verdicts on the studies from ``first_id`` to ``last_id``
    (the caller keeps those of the selected studies)."""
    query = select(
        VerdictSet.study_id,
        VerdictSet.reviewer_id,
        VerdictSet.present_mask,
        VerdictSet.labels,
        VerdictSet.adjudication,
    ).where(VerdictSet.study_id.between(int(first_id), int(last_id)))
    if flt.reviewer_id is not None:
        query = query.where(VerdictSet.reviewer_id == int(flt.reviewer_id))
    return query


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a few hundred thousand row tuples are
    made and dropped: they hold no cycles, and each collection the allocations trigger
    walks them all (0.5 to 0.7 s of a 100,000-study load)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _columns(rows: Sequence[tuple], width: int) -> list[tuple]:
    """Driver rows as columns (one transposition in C; no frame built for data that
    becomes arrays)."""
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


def _take(column: tuple, positions: np.ndarray) -> list:
    if len(positions) == len(column) and np.array_equal(positions, np.arange(len(column))):
        return list(column)
    return [column[i] for i in positions.tolist()]


def _fetch(conn, statement) -> list[tuple]:
    """The driver's own tuples. These columns need no result processing (ids, text, bytes,
    numbers; times read as text or the driver's datetimes), and building 100,000 SQLAlchemy
    Rows, then reading them back, cost more than the query itself."""
    result = conn.execute(statement)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


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
