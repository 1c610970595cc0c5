"""What a reviewer's verdict on a study may say: the checks that make a verdict coherent,
kept apart from the form and the database so both apply the same rule."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


class RowState(StrEnum):
    """What the reader has said of one label on the reading screen (the panel's
    ``data-state``): present, absent, or nothing yet."""

    PRESENT = "present"
    ABSENT = "absent"
    UNSET = "unset"


def verdicts_from_states(states: dict[str, str], flags: dict[str, bool]) -> dict[str, str]:
    """The stored verdict of every label from what the reader marked, by the submit rule
    "unmarked findings absent": a finding is present only when marked present; "No
    Finding" is as marked, and when left unmarked it is present exactly when no finding
    is (a reader who marks it absent with no finding present says "abnormal, none of these").
    Raises ValueError for a state that is not a RowState or a label the study lacks."""
    unknown = sorted(set(states) - set(flags))
    if unknown:
        raise ValueError(f"no such label on this study: {', '.join(unknown)}")
    marked = {label: RowState(states.get(label, RowState.UNSET)) for label in flags}
    truths = {label: state is RowState.PRESENT for label, state in marked.items() if label != NO_FINDING}
    if NO_FINDING in flags:
        said = marked[NO_FINDING]
        truths[NO_FINDING] = not any(truths.values()) if said is RowState.UNSET else said is RowState.PRESENT
    return {label: verdict_for(flags[label], truths[label]) for label in flags}


def states_from_verdicts(verdicts: dict[str, str], flags: dict[str, bool]) -> dict[str, RowState]:
    """The panel's states for a study the reader has already read (their stored verdicts)."""
    return {
        label: (RowState.PRESENT if present(flags[label], v) else RowState.ABSENT)
        for label, v in verdicts.items()
        if label in flags
    }
