"""Who may read a study now, and as what: the one rule behind "Read next", the claim a
reader takes when a study opens, the read-only screen and the refusal of a save.

A study needs ``reads_required`` reads (1, or 2 where the site double-reads). Once it has
them, it is complete when they agree; when they disagree it waits for an adjudicator:
an admin who did not read it. Nobody reads a study twice, and a study never gets more
reads than it needs, however many readers press "Read next" at once (the database
applies this rule inside the transaction that writes the read).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReadRole(StrEnum):
    """What a permitted verdict counts as."""

    READER = "reader"  # one of the study's required reads
    ADJUDICATOR = "adjudicator"  # settles the disagreement of the required reads


class Refusal(StrEnum):
    """Why a reader may not read a study now (the screen opens read-only with the reason)."""

    NOT_ANALYSED = "not_analysed"
    ALREADY_READ = "already_read"
    CLAIMED = "claimed"
    READS_COMPLETE = "reads_complete"
    AWAITING_ADJUDICATION = "awaiting_adjudication"
    ADJUDICATED = "adjudicated"


REASONS: dict[Refusal, str] = {
    Refusal.NOT_ANALYSED: "the study has no analysis to read yet.",
    Refusal.ALREADY_READ: "you have already read this study; your verdict is shown as saved.",
    Refusal.CLAIMED: "another reader has this study open; it is theirs to read.",
    Refusal.READS_COMPLETE: "the study already has the reads it needs.",
    Refusal.AWAITING_ADJUDICATION: "its reads disagree and it waits for an adjudicator (an admin who did not read it).",
    Refusal.ADJUDICATED: "an adjudicator has already settled its reads.",
}


@dataclass(frozen=True)
class StudyReads:
    """What is stored about a study's reads when the rule is applied."""

    analysed: bool
    reads: dict[int, int]  # reader id -> packed truths (bit mask) of each required read
    adjudicator: int | None  # who settled a disagreement, if anyone has
    claimed_by_others: int  # live claims by others who have not read it (readers or an adjudicator)
    reads_required: int

    @property
    def disagree(self) -> bool:
        return len(set(self.reads.values())) > 1


@dataclass(frozen=True)
class Access:
    """The answer: a role to read in, or the refusal and its reason."""

    role: ReadRole | None
    refusal: Refusal | None = None

    @property
    def allowed(self) -> bool:
        return self.role is not None

    @property
    def reason(self) -> str:
        return REASONS[self.refusal] if self.refusal else ""


def access(state: StudyReads, reader_id: int, is_admin: bool, count_claims: bool = True) -> Access:
    """May ``reader_id`` read this study, and as what.

    ``count_claims``: whether others' live claims count against the reads still open (when
    a study is opened or offered); a save ignores them, so the first complete read is kept
    and a study still never exceeds its required reads.
    """
    if not state.analysed:
        return Access(None, Refusal.NOT_ANALYSED)
    if reader_id in state.reads or reader_id == state.adjudicator:
        return Access(None, Refusal.ALREADY_READ)
    if state.adjudicator is not None:
        return Access(None, Refusal.ADJUDICATED)
    required = max(1, state.reads_required)
    if len(state.reads) >= required:
        if not state.disagree:
            return Access(None, Refusal.READS_COMPLETE)
        if not is_admin:
            return Access(None, Refusal.AWAITING_ADJUDICATION)
        if count_claims and state.claimed_by_others:
            return Access(None, Refusal.CLAIMED)  # another admin is adjudicating it
        return Access(ReadRole.ADJUDICATOR)
    if count_claims and len(state.reads) + state.claimed_by_others >= required:
        return Access(None, Refusal.CLAIMED)
    return Access(ReadRole.READER)
