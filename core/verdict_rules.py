"""What a reviewer's verdict on a study may say: the checks that make a verdict coherent,
kept apart from the form and the database so both apply the same rule."""

from __future__ import annotations

from dataclasses import dataclass

from core.labels import NO_FINDING

FLAGGED_VERDICTS = ("correct", "incorrect")  # the model's flag was right / wrong
UNFLAGGED_VERDICTS = ("correct", "missed")  # absent as the model said / present, model missed it


def present(flagged: bool, verdict: str) -> bool:
    """Whether the reviewer says the finding is present."""
    if flagged:
        if verdict not in FLAGGED_VERDICTS:
            raise ValueError(f"a flagged finding is marked correct or incorrect, not {verdict!r}")
        return verdict == "correct"
    if verdict not in UNFLAGGED_VERDICTS:
        raise ValueError(f"an unflagged finding is marked correct or missed, not {verdict!r}")
    return verdict == "missed"


def contradiction(truths: dict[str, bool]) -> str | None:
    """Why these truths cannot all hold, or None: "No Finding" present excludes every finding."""
    if truths.get(NO_FINDING):
        findings = sorted(lab for lab, yes in truths.items() if yes and lab != NO_FINDING)
        if findings:
            return f"'No Finding' is marked present together with {', '.join(findings)}: mark one or the other."
    return None


def verdict_for(flagged: bool, is_present: bool) -> str:
    """The stored verdict that says a finding is present or absent, given the model's flag
    (the inverse of `present`)."""
    if flagged:
        return "correct" if is_present else "incorrect"
    return "missed" if is_present else "correct"


def normal_study(flags: dict[str, bool]) -> dict[str, str]:
    """The verdicts of a normal study: every finding absent (and No Finding present)."""
    return {label: verdict_for(flagged, label == NO_FINDING) for label, flagged in flags.items()}


@dataclass(frozen=True)
class Mark:
    """Where on an image the reader places a finding: fractions of the image's width (x)
    and height (y) from its top left, so a mark means the same spot at any display size;
    ``image_id`` is the study image (instance) it was placed on, None for a one-image study."""

    x: float
    y: float
    image_id: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("x", self.x), ("y", self.y)):
            if not 0.0 <= float(value) <= 1.0:  # also refuses NaN
                raise ValueError(f"a mark's {name} is a fraction of the image, 0 to 1, not {value!r}")


def mark_problem(truths: dict[str, bool], marks: dict[str, Mark]) -> str | None:
    """Why these marks cannot be stored with these truths, or None: a point says where a
    finding is, so it belongs to a finding marked present, never to "No Finding"."""
    wrong = sorted(label for label in marks if label == NO_FINDING or not truths.get(label, False))
    if wrong:
        return f"a point is marked for {', '.join(wrong)}, which is not a finding marked present."
    return None
