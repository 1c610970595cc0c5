"""A submission from the reading component, checked before anything acts on it: it is
data from the browser, so every field is bounded and typed here (a study id, one state
per label, marks as fractions of an image, a note of at most 5,000 characters)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.verdict_rules import Mark, RowState

NOTE_LIMIT = 5000
LABEL_LIMIT = 64  # no label name is longer; a longer key is not one of ours
MAX_LABELS = 32


@dataclass(frozen=True)
class Submission:
    """What the reader submitted, for the study it was made on."""

    study_id: int
    states: dict[str, str]
    marks: dict[str, Mark]
    note: str
    shown_ms: float


def _label_map(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or len(raw) > MAX_LABELS:
        raise ValueError(f"the {what} are not a list of labels")
    if any(not isinstance(k, str) or len(k) > LABEL_LIMIT for k in raw):
        raise ValueError(f"the {what} name a label that does not exist")
    return raw


def _mark(raw: Any) -> Mark:
    if not isinstance(raw, dict):
        raise ValueError("a mark is a point on an image")
    image_id = raw.get("image_id")
    if image_id is not None and (not isinstance(image_id, int) or isinstance(image_id, bool) or image_id < 1):
        raise ValueError("a mark names no image of the study")
    x, y = raw.get("x"), raw.get("y")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)):
        raise ValueError("a mark's position is not a number")
    return Mark(float(x), float(y), image_id)  # Mark refuses a point off the image


def parse_submission(raw: Any) -> Submission:
    """The submission, or ValueError with the reason in words."""
    if not isinstance(raw, dict):
        raise ValueError("the submission is empty")
    sid = raw.get("study_id")
    if not isinstance(sid, int) or isinstance(sid, bool) or not 1 <= sid < 2**63:
        raise ValueError("the submission names no study")
    states = _label_map(raw.get("states", {}), "verdicts")
    allowed = {str(s) for s in RowState}
    if any(v not in allowed for v in states.values()):
        raise ValueError("a verdict is neither present, absent nor unset")
    marks = {k: _mark(v) for k, v in _label_map(raw.get("marks", {}), "marks").items()}
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise ValueError("the note is not text")
    shown = raw.get("shown_ms", 0)
    if not isinstance(shown, int | float) or isinstance(shown, bool) or not math.isfinite(shown):
        raise ValueError("the submission does not say how long the study was shown")
    return Submission(sid, dict(states), marks, note[:NOTE_LIMIT], float(shown))
