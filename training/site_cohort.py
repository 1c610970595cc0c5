"""The site's own labelled studies, split by patient for refitting and judging a model.

Every reviewed study whose truth is known for every label (reader verdicts under the
disagreement rule, adjudications, or imported reference labels: what the analytics use) is
a labelled radiograph from the site's scanners and population. Each patient goes to one
part, training, validation or held-out test, by a keyed hash of the patient key: the
assignment depends on nothing but the patient, so it is the same in every retraining as
the site grows, a patient never moves between parts, and the held-out part is never seen
by fitting, calibration or thresholds in any round.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

SPLIT_SEED = "cxr-site-split-v1"
FRACTIONS = (0.6, 0.2)  # training, validation; the rest is the held-out test part


class Part(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


def patient_part(patient_key: str, seed: str = SPLIT_SEED) -> Part:
    """The part a patient belongs to, from a hash of the key alone (stable, uniform)."""
    digest = hashlib.sha256(f"{seed}\x1f{patient_key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < FRACTIONS[0]:
        return Part.TRAIN
    return Part.VALIDATION if u < FRACTIONS[0] + FRACTIONS[1] else Part.TEST


@dataclass(frozen=True)
class SiteLabels:
    """Complete labelled studies, one row each, with their patient and part."""

    study_ids: np.ndarray  # (n,)
    groups: np.ndarray  # (n,) patient key
    truth: np.ndarray  # (n, L) 0/1, no unknowns
    labels: tuple[str, ...]
    parts: np.ndarray  # (n,) Part values

    def part(self, which: Part) -> np.ndarray:
        """Row positions of one part."""
        return np.flatnonzero(self.parts == which.value)

    def positives(self, which: Part) -> dict[str, int]:
        rows = self.part(which)
        return {label: int(self.truth[rows, j].sum()) for j, label in enumerate(self.labels)}

    def counts(self) -> dict[str, dict[str, int]]:
        """Studies and positives per label in each part (what a model card records)."""
        return {
            p.value: {"studies": int(len(self.part(p))), **self.positives(p)}
            for p in (Part.TRAIN, Part.VALIDATION, Part.TEST)
        }


def site_labels(
    study_ids: np.ndarray, groups: np.ndarray, truth: np.ndarray, labels: tuple[str, ...], seed: str = SPLIT_SEED
) -> SiteLabels:
    """Keep the studies whose truth is known for every label and assign each its
    patient's part. ``truth`` is (n, L) with NaN where unknown."""
    truth = np.asarray(truth, dtype=np.float64)
    complete = ~np.isnan(truth).any(axis=1)
    groups = np.array([str(g) for g in groups], dtype=object)[complete]  # object: numpy str drops trailing NULs
    parts = np.array([patient_part(g, seed).value for g in groups], dtype=object)
    return SiteLabels(
        np.asarray(study_ids)[complete],
        groups,
        (truth[complete] > 0.5).astype(np.int8),
        tuple(labels),
        parts,
    )
