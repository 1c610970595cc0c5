"""The worklist the screens show: each reader's queues in triage order, the people who
read, and the studies waiting longest (queries in :mod:`db.worklist`)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from core.config import Settings
from core.study_status import StudyStatus
from db import worklist as rows
from db.worklist import QUEUES, WorklistFilter

__all__ = ["QUEUES", "StudyStatus", "WorklistFilter", "longest_waiting", "reader_worklist", "reviewers"]


def reader_worklist(engine: Engine, settings: Settings, flt: WorklistFilter, limit: int = 200) -> pd.DataFrame:
    """``flt``'s studies in this site's triage order, with the site's reads per study."""
    flt.reads_required = settings.reads_required
    return rows.worklist(engine, flt, settings.triage(), limit)


def reviewers(engine: Engine) -> dict[int, str]:
    """Every account that can read, id -> name (the worklist's and analytics' reader filter)."""
    return rows.reviewers(engine)


def longest_waiting(engine: Engine, limit: int = 5) -> pd.DataFrame:
    """Studies nobody has read yet, oldest first (the home page's reminder)."""
    return rows.longest_waiting(engine, limit)
