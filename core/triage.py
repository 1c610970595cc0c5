"""Worklist order: most suspicious first, and no study left waiting for ever.

A study's suspicion is how far its findings are above their thresholds, weighted by
urgency (a pneumothorax outranks a hernia); a study outside the model's domain scores 0.
Waiting time adds to it at a constant rate, chosen so that the guarantee below holds:

    A study that has waited ``overdue_hours`` longer than another is ranked above it,
    whatever either's findings. In particular a study waiting ``overdue_hours`` outranks
    every study that has just arrived.

Proof: suspicion lies in [0, max_suspicion]; the rate is (max_suspicion + 1) per
``overdue_hours``; so a waiting-time lead of ``overdue_hours`` adds max_suspicion + 1,
more than any difference in suspicion.

Because the boost grows at the same rate for every study, the order depends only on
``priority_key = suspicion - rate x (hours since 1970 at arrival)``: a number fixed when
the study is analysed, stored in ``studies.priority`` and ordered by an index in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from core.labels import NO_FINDING


@dataclass(frozen=True)
class TriagePolicy:
    """A site's worklist order: urgency weight per finding (configuration, see
    ``core.config``) and the overdue time of the guarantee above."""

    urgency: Mapping[str, float]
    overdue_hours: float

    def check_labels(self, labels: list[str] | tuple[str, ...]) -> None:
        """Every finding a model reports needs a weight, or the guarantee's ceiling is wrong."""
        missing = [lab for lab in labels if lab != NO_FINDING and lab not in self.urgency]
        if missing:
            raise ValueError(f"no triage weight for {missing}: add them to CXR_TRIAGE_WEIGHTS")

    def suspicion(self, probabilities: dict[str, float], thresholds: dict[str, float]) -> float:
        return suspicion(probabilities, thresholds, self.urgency)

    @property
    def max_suspicion(self) -> float:
        return max_suspicion(self.urgency)

    @property
    def rate(self) -> float:
        """Priority gained per hour of waiting (see the module's guarantee)."""
        if self.overdue_hours <= 0:
            return 0.0
        return (self.max_suspicion + 1.0) / self.overdue_hours

    def key(self, score: float | None, arrived: datetime) -> float:
        return priority_key(score, arrived, self.rate)

    def current(self, key: float, now: datetime) -> float:
        return current_priority(key, now, self.rate)


def suspicion(probabilities: dict[str, float], thresholds: dict[str, float], urgency: Mapping[str, float]) -> float:
    """Sum over findings at or above threshold of urgency x margin, margin in [0, 1].

    margin = (p - t) / (1 - t): 0 at the threshold, 1 at certainty. A flagged finding
    always scores at least 0.1 x urgency, so any flag outranks no flag. A label without
    a weight counts 0 (the worker refuses to start with such a model: check_labels).
    """
    total = 0.0
    for label, p in probabilities.items():
        if label == NO_FINDING or label not in urgency:
            continue
        t = thresholds.get(label, 0.5)
        if p >= t:
            margin = (p - t) / max(1e-6, 1.0 - t)
            total += urgency[label] * (0.1 + 0.9 * margin)
    return round(total, 6)


def max_suspicion(urgency: Mapping[str, float]) -> float:
    """The score of a study with every weighted finding certain: the ceiling of :func:`suspicion`."""
    return float(sum(w for label, w in urgency.items() if label != NO_FINDING))


def epoch_hours(moment: datetime) -> float:
    """Hours since 1970-01-01 UTC of a naive-UTC (as stored) or aware datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() / 3600.0


def priority_key(score: float | None, arrived: datetime, rate: float) -> float:
    """The stored order key: higher first. Equal to priority now minus a constant
    shared by all studies, so ordering by it is ordering by current priority."""
    return float(score or 0.0) - rate * epoch_hours(arrived)


def current_priority(key: float, now: datetime, rate: float) -> float:
    """The priority shown to people: suspicion plus the boost so far."""
    return key + rate * epoch_hours(now)
