"""Worklist order: most suspicious first, and no study left waiting for ever.

A study's suspicion is how far its findings are above their thresholds, weighted by
urgency (a pneumothorax outranks a hernia). Waiting time adds to it, so an unflagged
study (a possible false negative) rises steadily and is read within the overdue time.
"""
from __future__ import annotations

from core.labels import NO_FINDING, URGENCY


def suspicion(probabilities: dict[str, float], thresholds: dict[str, float]) -> float:
    """Sum over findings at or above threshold of urgency x margin, margin in [0, 1].

    margin = (p - t) / (1 - t): 0 at the threshold, 1 at certainty. A flagged finding
    always scores at least 0.1 x urgency, so any flag outranks no flag.
    """
    total = 0.0
    for label, p in probabilities.items():
        if label == NO_FINDING:
            continue
        t = thresholds.get(label, 0.5)
        if p >= t:
            margin = (p - t) / max(1e-6, 1.0 - t)
            total += URGENCY.get(label, 1.0) * (0.1 + 0.9 * margin)
    return round(total, 6)


def waiting_boost(hours_waiting: float, overdue_hours: float) -> float:
    """Grows linearly; at the overdue time it equals a certain pneumothorax (3.0), so
    an overdue study outranks any fresh one."""
    if overdue_hours <= 0:
        return 0.0
    return max(0.0, hours_waiting) / overdue_hours * 3.0
