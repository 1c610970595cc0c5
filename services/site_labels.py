"""The site's labelled studies for retraining: the truth the analytics use (reader
verdicts under the disagreement rule, adjudications, or imported reference labels), for
the studies analysed by one model version, complete studies only, split by patient
(training.site_cohort)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine

from core.cohort import truth_from_finding_labels
from services.analytics import CohortFilter, load_cohort, with_truth
from training.site_cohort import SiteLabels, site_labels


def site_cohort(
    engine: Engine, model_version: str, labels: tuple[str, ...], source: str = "verdicts", rule: str = "majority"
) -> SiteLabels:
    """``source``: "verdicts" (readers; ``rule`` settles disagreements as on Analytics; a
    study no reader has read counts with its imported reference labels) or "reference"
    (imported labels only)."""
    data = load_cohort(engine, CohortFilter(model_version=model_version), labels, with_reference=True)
    if data.meta.empty:  # nothing analysed by this version: an empty cohort, not an error
        return site_labels(np.zeros(0, int), np.zeros(0, str), np.zeros((0, len(labels))), labels)
    if source != "reference" and len(data.vote_pos) == 0:  # no reader has read any: reference labels only
        cohort = with_truth(data, "reference", rule)
        truth = np.full(cohort.truth.shape, np.nan)
    else:
        cohort = with_truth(data, source, rule)
        truth = np.array(cohort.truth, dtype=np.float64)
    if source != "reference":  # studies no reader has read yet count with their imported reference labels
        reference = truth_from_finding_labels(list(data.meta["reference"]), labels)
        truth = np.where(np.isnan(truth), reference, truth)
    return site_labels(cohort.study_ids, cohort.groups, truth, cohort.labels)
