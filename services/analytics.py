"""Cohort analytics for the screens: the reviewed cohort read once per change of the
stored data (``data_stamp``), the model versions and readers to filter by (queries in
:mod:`db.analytics`; the statistics in :mod:`core.metrics` and :mod:`core.cohort`)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from db import analytics, studies
from db.analytics import CohortData, CohortFilter

__all__ = ["CohortData", "CohortFilter", "data_stamp", "load_cohort", "model_versions", "study_details"]


def load_cohort(engine: Engine, flt: CohortFilter, labels: tuple[str, ...], with_reference: bool = True) -> CohortData:
    """The filtered cohort: scores, thresholds and every reader's packed truths."""
    return analytics.load_cohort(engine, flt, labels, with_reference)


def study_details(engine: Engine, ids) -> pd.DataFrame:
    """Name, upload time, view, sex and age of the studies ``ids``, in that order."""
    return analytics.study_details(engine, ids)


def data_stamp(engine: Engine) -> tuple[str, ...]:
    """Changes whenever a study, a score or a verdict does: the cache key of the cohort."""
    return analytics.data_stamp(engine)


def model_versions(engine: Engine) -> list[str]:
    return studies.model_versions(engine)
