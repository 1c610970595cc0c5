"""Threshold versions: operating points proposed on the reviewed cohort, saved as a new
active set for a model version (new predictions use it; stored ones keep their own)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import Engine

from core import metrics
from core.cohort import Cohort
from core.model_card import ModelCard
from db.results import save_threshold_set

TARGET_KINDS = ("sensitivity", "specificity", "Youden")


@dataclass(frozen=True)
class OperatingPoint:
    finding: str
    n: int
    positives: int
    current_threshold: float | None  # the median threshold the cohort's predictions were made with
    threshold: float | None  # None: the cohort cannot place one (one class only)
    sensitivity: float | None = None
    sensitivity_ci: str = ""
    specificity: float | None = None
    specificity_ci: str = ""
    ppv: float | None = None
    npv: float | None = None
    false_positive_rate: float | None = None
    wrong_share_of_positive_calls: float | None = None


def _ci(interval) -> str:
    return "" if interval.value != interval.value else f"{interval.low:.2f}–{interval.high:.2f}"


@dataclass(frozen=True)
class SaveDecision:
    """Which proposed thresholds may be saved, and why the others may not."""

    saved: dict[str, float]
    kept: dict[str, str]  # finding -> why its current threshold stays

    @property
    def refused(self) -> bool:
        return not self.saved


def decide(points: list[OperatingPoint], min_positives: int) -> SaveDecision:
    """A threshold chosen on fewer than ``min_positives`` positives is noise, not an
    operating point: such findings keep their current threshold."""
    saved, kept = {}, {}
    for p in points:
        if p.threshold is None:
            kept[p.finding] = "no threshold can be placed (one class only)"
        elif p.positives < min_positives:
            kept[p.finding] = f"{p.positives} positives, fewer than {min_positives}"
        else:
            saved[p.finding] = p.threshold
    return SaveDecision(saved, kept)


def propose(cohort: Cohort, findings: list[str], kind: str, target: float) -> list[OperatingPoint]:
    """Per finding, the threshold meeting ``target`` sensitivity or specificity (or Youden's J)."""
    if kind not in TARGET_KINDS:
        raise ValueError(f"kind must be one of {TARGET_KINDS}")
    out = []
    for finding in findings:
        y, s, used, _ = cohort.label(finding)
        point = OperatingPoint(
            finding=finding,
            n=int(y.size),
            positives=int(y.sum()),
            current_threshold=round(float(np.median(used)), 4) if used.size else None,
            threshold=None,
        )
        if kind == "sensitivity":
            t = metrics.threshold_for_sensitivity(y, s, target)
        elif kind == "specificity":
            t = metrics.threshold_for_specificity(y, s, target)
        else:
            t = metrics.threshold_youden(y, s)
        if t is None:
            out.append(point)
            continue
        conf = metrics.confusion_at(y, s, t)
        sens, spec = conf.sensitivity(), conf.specificity()
        out.append(
            replace(
                point,
                threshold=float(t),
                sensitivity=sens.value,
                sensitivity_ci=_ci(sens),
                specificity=spec.value,
                specificity_ci=_ci(spec),
                ppv=conf.ppv().value,
                npv=conf.npv().value,
                false_positive_rate=conf.false_positive_rate().value,
                wrong_share_of_positive_calls=conf.false_discovery_rate().value,
            )
        )
    return out


def save_proposal(
    engine: Engine, card: ModelCard, decision: SaveDecision, method: str, user_id: int, actor: str
) -> str:
    """The card's thresholds with the allowed proposals replacing theirs, saved as the active set."""
    if decision.refused:
        raise ValueError("no finding has enough positives for a new threshold")
    full = dict(card.thresholds)
    full.update(decision.saved)
    return save_threshold_set(engine, card.version, full, method, user_id, actor)
