"""The reading queues: each reader's worklist in triage order with its queues (to read,
second read, adjudication), the candidates for "Read next", and the waiting studies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import ColumnElement, Engine, and_, exists, func, select

from core.labels import NO_FINDING
from core.triage import TriagePolicy
from db.claims import live_claims_by_others
from db.schema import Prediction, Study, StudyStatus, User, Verdict, VerdictSet, utcnow

QUEUES = ("to_read", "second_read", "adjudication", "all")


@dataclass
class WorklistFilter:
    statuses: tuple[str, ...] = (StudyStatus.DONE,)
    finding: str | None = None
    reviewed: bool | None = None  # by anyone; None: both
    reviewer_id: int | None = None  # studies this reviewer has read
    date_from: datetime | None = None
    date_to: datetime | None = None
    name_contains: str = ""
    reader_id: int | None = None  # whose worklist: "read by me" and the queues are for this reader
    queue: str = "all"  # to_read | second_read | adjudication | all (see worklist)
    reads_required: int = 1  # 2 where the site double-reads


def _reads():
    """SQL: the study's required reads given so far (an adjudication is not one)."""
    return (
        select(func.count())
        .where(VerdictSet.study_id == Study.id, VerdictSet.adjudication.is_(False))
        .scalar_subquery()
    )


def _adjudicated():
    return exists().where(VerdictSet.study_id == Study.id, VerdictSet.adjudication.is_(True))


def _disagreement(reads_required: int):
    """SQL: the study has its required reads, they differ (distinct packed truths) and no
    adjudicator has settled them (core.reading_rules)."""
    distinct = select(func.count(func.distinct(VerdictSet.present_mask))).where(
        VerdictSet.study_id == Study.id, VerdictSet.adjudication.is_(False)
    )
    return and_(_reads() >= max(1, reads_required), distinct.scalar_subquery() > 1, ~_adjudicated())


def worklist(engine: Engine, flt: WorklistFilter, triage: TriagePolicy, limit: int = 200) -> pd.DataFrame:
    """One reader's worklist in triage order (:mod:`core.triage`), ordered and limited in SQL.

    Queues for ``flt.reader_id``: ``to_read`` — studies this reader has not read that still
    need a read (fewer than ``reads_required``), most urgent first; ``second_read`` — the
    part of those another reader has already read (both skip a study that other readers'
    live claims already fill); ``adjudication`` — studies whose required reads disagree,
    no adjudicator has decided and this reader did not read; ``all`` — everything, the
    reader's unread first. "Read next" and the Review page claim the first ``to_read``
    study they can (next_candidates, services.reading.read_next), so the two never
    disagree. Filters are bound parameters (never string-built SQL); the name search
    escapes LIKE wildcards. ``priority`` is the current priority (suspicion + waiting
    boost); ``waiting_h`` the hours since the study arrived.
    """
    if flt.queue not in QUEUES:
        raise ValueError(f"queue must be one of {QUEUES}")
    reviewed = exists().where(Verdict.study_id == Study.id)
    reads = _reads()
    mine = exists().where(VerdictSet.study_id == Study.id, VerdictSet.reviewer_id == (flt.reader_id or -1))
    query = select(
        Study.id,
        Study.original_name,
        Study.status,
        Study.triage_score,
        Study.created_at,
        Study.view_position,
        Study.file_format,
        Study.error,
        reviewed.label("reviewed"),
        Study.abnormal,
        Study.in_domain,
        Study.priority.label("priority_key"),
        Study.accession_number,
        Study.study_date,
        Study.patient_age,
        Study.patient_sex,
        reads.label("reads"),
        mine.label("read_by_me"),
    )
    conds: list[ColumnElement[bool]] = [Study.status.in_(flt.statuses)] if flt.statuses else []
    if flt.queue in ("to_read", "second_read"):
        # never a study whose reads and other readers' live claims already make up its reads
        held = live_claims_by_others(flt.reader_id or -1)
        conds += [~mine, ~_adjudicated(), reads + held < max(1, flt.reads_required)]
        if flt.queue == "second_read":
            conds.append(reads > 0)
    elif flt.queue == "adjudication":
        conds += [~mine, _disagreement(flt.reads_required)]
    if flt.finding:
        conds.append(
            exists().where(
                Prediction.study_id == Study.id, Prediction.label == flt.finding, Prediction.flagged.is_(True)
            )
        )
    if flt.reviewed is not None:
        conds.append(reviewed if flt.reviewed else ~reviewed)
    if flt.reviewer_id is not None:
        conds.append(exists().where(Verdict.study_id == Study.id, Verdict.reviewer_id == flt.reviewer_id))
    if flt.date_from:
        conds.append(Study.created_at >= flt.date_from)
    if flt.date_to:
        conds.append(Study.created_at <= flt.date_to)
    if flt.name_contains:
        escaped = flt.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(Study.original_name.like(f"%{escaped}%", escape="\\"))
    query = (
        query.where(and_(*conds)).order_by(mine, Study.priority.desc(), Study.abnormal.desc(), Study.id).limit(limit)
    )
    columns = [
        "id",
        "original_name",
        "status",
        "triage_score",
        "created_at",
        "view_position",
        "file_format",
        "error",
        "reviewed",
        "abnormal",
        "in_domain",
        "priority_key",
        "accession_number",
        "study_date",
        "patient_age",
        "patient_sex",
        "reads",
        "read_by_me",
    ]
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(query).mappings().all(), columns=columns)
    if df.empty:
        df["priority"] = []
        df["flagged"] = []
        df["waiting_h"] = []
        return df.drop(columns="priority_key")
    now = utcnow()
    df["priority"] = df["priority_key"].astype(float).map(lambda key: round(triage.current(key, now), 4))
    df["waiting_h"] = ((now - pd.to_datetime(df["created_at"])).dt.total_seconds() / 3600).round(1)
    df["reviewed"] = df["reviewed"].astype(bool)
    df["read_by_me"] = df["read_by_me"].astype(bool)
    df["flagged"] = df["id"].map(_flagged_labels(engine, df["id"].tolist()))
    return df.drop(columns="priority_key")


def _flagged_labels(engine: Engine, ids: list[int]) -> dict[int, str]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    with engine.connect() as conn:
        # "No Finding" above its threshold is the model calling the study normal, not a flag
        rows = conn.execute(
            select(Prediction.study_id, Prediction.label).where(
                Prediction.study_id.in_(ids), Prediction.flagged.is_(True), Prediction.label != NO_FINDING
            )
        )
        for sid, label in rows:
            out[sid].append(label)
    return {k: ", ".join(sorted(v)) for k, v in out.items()}


def next_candidates(
    engine: Engine, after_id: int, triage: TriagePolicy, reviewer_id: int, reads_required: int = 1, limit: int = 5
) -> list[int]:
    """The studies this reviewer should read next, in their ``to_read`` queue's order (the
    worklist's own), never one they have read, never ``after_id``: the caller claims the
    first it can (another reader may take one between this query and the claim)."""
    flt = WorklistFilter(reader_id=reviewer_id, queue="to_read", reads_required=reads_required)
    return [int(sid) for sid in worklist(engine, flt, triage, limit=limit + 1)["id"] if sid != after_id][:limit]


def reviewers(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(User.id, User.username).order_by(User.username)).all())


def longest_waiting(engine: Engine, limit: int = 5) -> pd.DataFrame:
    reviewed = exists().where(Verdict.study_id == Study.id)
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(Study.id, Study.original_name, Study.status, Study.created_at)
                .where(~reviewed, Study.status.in_([StudyStatus.QUEUED, StudyStatus.PROCESSING, StudyStatus.DONE]))
                .order_by(Study.created_at, Study.id)
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return pd.DataFrame(rows, columns=["id", "original_name", "status", "created_at"])
