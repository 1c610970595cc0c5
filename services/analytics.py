"""Cohort analytics for the screens: the reviewed cohort read once per change of the
stored data (``data_stamp``), the ground truth chosen for it (the readers' verdicts under a
disagreement rule, or the imported reference labels), and the model versions and readers
to filter by (queries in :mod:`db.analytics`; the statistics in :mod:`core.metrics` and
:mod:`core.cohort`)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from core.cohort import Cohort, TruthRule, TruthSource, truth_from_finding_labels, truth_from_votes
from db import analytics, studies
from db.analytics import CohortData, CohortFilter

__all__ = [
    "CohortData",
    "CohortFilter",
    "data_stamp",
    "load_cohort",
    "model_versions",
    "study_details",
    "with_truth",
]


def load_cohort(engine: Engine, flt: CohortFilter, labels: tuple[str, ...], with_reference: bool = True) -> CohortData:
    """The filtered cohort: scores, thresholds and every reader's packed truths."""
    return analytics.load_cohort(engine, flt, labels, with_reference)


def with_truth(
    data: CohortData, source: str = TruthSource.VERDICTS, rule: str = TruthRule.MAJORITY, chosen: int | None = None
) -> Cohort:
    """The cohort with its ground truth: the imported reference labels, or the readers'
    verdict sets combined by ``rule`` (``chosen``: the reader whose reads count under the
    "reviewer" rule). Every figure of the page and the site's training labels rest on it."""
    n = len(data.meta)
    if TruthSource(source) is TruthSource.REFERENCE:
        truth = truth_from_finding_labels(list(data.meta["reference"]), data.labels)
    else:
        truth = truth_from_votes(
            data.vote_pos,
            data.vote_present,
            n,
            rule,
            data.vote_reviewer,
            chosen,
            data.vote_adjudicator,
            data.vote_known,
        )
    return Cohort(
        data.meta["id"].to_numpy(),
        data.probs,
        data.thresholds,
        truth,
        data.meta["groups"].to_numpy(),
        data.meta,
        tuple(data.labels),
    )


def study_details(engine: Engine, ids) -> pd.DataFrame:
    """Name, upload time, view, sex and age of the studies ``ids``, in that order."""
    return analytics.study_details(engine, ids)


def data_stamp(engine: Engine) -> tuple[str, ...]:
    """Changes whenever a study, a score or a verdict does: the cache key of the cohort."""
    return analytics.data_stamp(engine)


def model_versions(engine: Engine) -> list[str]:
    return studies.model_versions(engine)
