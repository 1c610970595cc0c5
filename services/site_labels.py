"""The site's labelled studies for retraining: the truth the analytics use (reader
verdicts under the disagreement rule, adjudications, or imported reference labels), for
the studies analysed by one model version, complete studies only, split by patient
(training.site_cohort)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine

from db.analytics import CohortFilter, load_cohort
from training.site_cohort import SiteLabels, site_labels


def site_cohort(
    engine: Engine, model_version: str, labels: tuple[str, ...], source: str = "verdicts", rule: str = "majority"
) -> SiteLabels:
    """``source``: "verdicts" (readers; ``rule`` settles disagreements as on Analytics) or
    "reference" (imported labels)."""
    data = load_cohort(engine, CohortFilter(model_version=model_version), labels, with_reference=source == "reference")
    if data.meta.empty:  # nothing analysed by this version: an empty cohort, not an error
        return site_labels(np.zeros(0, int), np.zeros(0, str), np.zeros((0, len(labels))), labels)
    cohort = data.cohort(source, rule)
    return site_labels(cohort.study_ids, cohort.groups, cohort.truth, cohort.labels)
