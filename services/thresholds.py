"""Threshold versions: operating points proposed on the reviewed cohort, saved as a new
active set for a model version (new predictions use it; stored ones keep their own)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from core import metrics
from core.cohort import Cohort
from core.model_card import ModelCard
from db.results import save_threshold_set

TARGET_KINDS = ("sensitivity", "specificity", "Youden")


@dataclass(frozen=True)
class OperatingPoint:
    finding: str
    threshold: float | None  # None: the cohort cannot place one (one class only)
    sensitivity: float | None = None
    specificity: float | None = None
    ppv: float | None = None
    npv: float | None = None
    false_positive_rate: float | None = None
    wrong_share_of_positive_calls: float | None = None


def propose(cohort: Cohort, findings: list[str], kind: str, target: float) -> list[OperatingPoint]:
    """Per finding, the threshold meeting ``target`` sensitivity or specificity (or Youden's J)."""
    if kind not in TARGET_KINDS:
        raise ValueError(f"kind must be one of {TARGET_KINDS}")
    out = []
    for finding in findings:
        y, s, _, _ = cohort.label(finding)
        if kind == "sensitivity":
            t = metrics.threshold_for_sensitivity(y, s, target)
        elif kind == "specificity":
            t = metrics.threshold_for_specificity(y, s, target)
        else:
            t = metrics.threshold_youden(y, s)
        if t is None:
            out.append(OperatingPoint(finding, None))
            continue
        conf = metrics.confusion_at(y, s, t)
        out.append(
            OperatingPoint(
                finding,
                float(t),
                conf.sensitivity().value,
                conf.specificity().value,
                conf.ppv().value,
                conf.npv().value,
                conf.false_positive_rate().value,
                conf.false_discovery_rate().value,
            )
        )
    return out


def save_proposal(
    engine: Engine, card: ModelCard, points: list[OperatingPoint], method: str, user_id: int, actor: str
) -> str:
    """The card's thresholds with the proposed ones replacing theirs, saved as the active set."""
    full = dict(card.thresholds)
    full.update({p.finding: p.threshold for p in points if p.threshold is not None})
    return save_threshold_set(engine, card.version, full, method, user_id, actor)
