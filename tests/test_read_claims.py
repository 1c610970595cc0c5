"""Reads are claimed and counted once: the reading rule (core.reading_rules) and the
service that applies it in the transaction that writes (services.reading), on SQLite
and PostgreSQL, with readers at once."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from core.labels import LABELS
from core.reading_rules import ReadRole, Refusal, StudyReads, access
from core.verdict_rules import normal_study, verdict_for
from db.schema import ReadClaim, Study, VerdictSet
from db.session import run_write
from db.users import create_user
from tests.conftest import analysed_studies

# --- the rule, pure -------------------------------------------------------------------

reads_st = st.dictionaries(st.integers(1, 6), st.integers(0, 3), max_size=4)


@given(
    reads=reads_st,
    adjudicator=st.none() | st.integers(1, 8),
    claims=st.integers(0, 3),
    required=st.integers(1, 3),
    reader=st.integers(1, 8),
    admin=st.booleans(),
    count_claims=st.booleans(),
)
def test_the_rule_never_grants_a_read_beyond_what_the_study_needs(
    reads, adjudicator, claims, required, reader, admin, count_claims
):
    state = StudyReads(True, reads, adjudicator, claims, required)
    got = access(state, reader, admin, count_claims)
    if reader in reads or reader == adjudicator:
        assert got.refusal is Refusal.ALREADY_READ  # nobody reads a study twice
    if got.role is ReadRole.READER:
        assert len(reads) < required and adjudicator is None
        if count_claims:
            assert len(reads) + claims < required  # others' live claims fill the rest
    if got.role is ReadRole.ADJUDICATOR:
        assert admin and len(reads) >= required and len(set(reads.values())) > 1 and adjudicator is None
    assert got.allowed == (got.refusal is None)
    assert got.allowed or got.reason  # a refusal always has words


def test_disagreeing_reads_wait_for_an_admin_who_did_not_read():
    state = StudyReads(True, {1: 0b01, 2: 0b10}, None, 0, 2)
    assert access(state, 1, is_admin=True).refusal is Refusal.ALREADY_READ  # an admin who read it
    assert access(state, 3, is_admin=False).refusal is Refusal.AWAITING_ADJUDICATION
    assert access(state, 3, is_admin=True).role is ReadRole.ADJUDICATOR
    agreed = StudyReads(True, {1: 0b01, 2: 0b01}, None, 0, 2)
    assert access(agreed, 3, is_admin=True).refusal is Refusal.READS_COMPLETE
    settled = StudyReads(True, {1: 0b01, 2: 0b10}, 3, 0, 2)
    assert access(settled, 4, is_admin=True).refusal is Refusal.ADJUDICATED


# --- the service, on a database -----------------------------------------------------

FLAGGED = {"Effusion"}


NORMAL = normal_study({lab: lab in FLAGGED for lab in LABELS})
EFFUSION = {
    lab: verdict_for(lab in FLAGGED, lab == "Effusion") for lab in LABELS
}  # Effusion present, nothing else (No Finding absent)


def _reads_per_study(engine) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                select(VerdictSet.study_id, func.count())
                .where(VerdictSet.adjudication.is_(False))
                .group_by(VerdictSet.study_id)
            ).all()
        )


def test_a_claimed_study_is_not_offered_to_another_reader_until_the_claim_lapses(settings, db_engine):
    from services.reading import open_study, read_next, save_read

    ids = analysed_studies(db_engine, FLAGGED, 2)
    ann, ben = (create_user(db_engine, name, "long enough password") for name in ("ann", "ben"))
    assert read_next(db_engine, settings, ann) == ids[0]  # claimed for ann
    assert read_next(db_engine, settings, ben) == ids[1]  # ben is never sent ann's study
    seen = open_study(db_engine, settings, ben, ids[0])
    assert seen.read_only and seen.access.refusal is Refusal.CLAIMED and "another reader" in seen.access.reason
    run_write(db_engine, lambda s: s.execute(update(ReadClaim).values(expires_at=ReadClaim.claimed_at)))
    assert not open_study(db_engine, settings, ben, ids[0]).read_only  # ann left: the claim lapsed
    assert save_read(db_engine, settings, ben, ids[0], NORMAL).saved
    late = save_read(db_engine, settings, ann, ids[0], NORMAL)  # ann comes back and submits
    assert not late.saved and late.message == "Not saved: the study already has the reads it needs."
    assert _reads_per_study(db_engine) == {ids[0]: 1}


def test_four_readers_at_once_never_give_a_study_more_than_its_reads(settings, db_engine):
    from services.reading import read_next, save_read

    double = replace(settings, reads_required=2)
    ids = analysed_studies(db_engine, FLAGGED, 12)
    readers = [create_user(db_engine, f"reader{i}", "long enough password") for i in range(4)]
    outcomes, errors = [], []
    start = threading.Barrier(len(readers))

    def read_all(reader) -> None:
        try:
            start.wait()
            while (sid := read_next(db_engine, double, reader)) is not None:
                outcomes.append(save_read(db_engine, double, reader, sid, NORMAL))
        except Exception as exc:  # noqa: BLE001 - any error fails the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=read_all, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert all(o.saved for o in outcomes), [o.message for o in outcomes if not o.saved]
    assert _reads_per_study(db_engine) == dict.fromkeys(ids, 2)  # every study read twice, none more
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ReadClaim)).scalar_one() == 0  # all released


def test_an_admin_reader_and_a_reviewer_who_disagree_go_to_another_admin(settings, db_engine):
    from db.worklist import WorklistFilter, worklist
    from services.reading import open_study, save_read

    double = replace(settings, reads_required=2)
    (sid,) = analysed_studies(db_engine, FLAGGED, 1)
    boss = create_user(db_engine, "boss", "long enough password", "admin")
    rev = create_user(db_engine, "rev", "long enough password")
    chief = create_user(db_engine, "chief", "long enough password", "admin")
    third = create_user(db_engine, "third", "long enough password")
    assert save_read(db_engine, double, boss, sid, NORMAL).role is ReadRole.READER  # an admin's read is a read
    assert save_read(db_engine, double, rev, sid, EFFUSION).saved

    def queue(who) -> set[int]:
        flt = WorklistFilter(reader_id=who.id, queue="adjudication", reads_required=2)
        return set(worklist(db_engine, flt, double.triage())["id"])

    assert queue(chief) == {sid} and queue(boss) == set()  # not the admin who read it
    refused = save_read(db_engine, double, third, sid, NORMAL)
    assert not refused.saved and "waits for an adjudicator" in refused.message
    assert open_study(db_engine, double, third, sid).access.refusal is Refusal.AWAITING_ADJUDICATION
    settled = save_read(db_engine, double, chief, sid, EFFUSION)
    assert settled.saved and settled.role is ReadRole.ADJUDICATOR and "adjudication" in settled.message
    assert queue(chief) == set()
    assert _reads_per_study(db_engine) == {sid: 2}  # the adjudication is not a third read
    with db_engine.connect() as conn:
        flags = dict(conn.execute(select(VerdictSet.reviewer_id, VerdictSet.adjudication)).all())
    assert flags == {boss.id: False, rev.id: False, chief.id: True}  # what analytics' adjudicator rule reads


def test_a_save_for_a_study_that_is_gone_or_not_analysed_says_why(settings, db_engine):
    from services.reading import save_read

    (sid,) = analysed_studies(db_engine, FLAGGED, 1)
    reader = create_user(db_engine, "ann", "long enough password")
    missing = save_read(db_engine, settings, reader, sid + 1000, NORMAL)
    assert not missing.saved and "does not exist" in missing.message
    run_write(db_engine, lambda s: s.execute(update(Study).values(status="queued")))
    queued = save_read(db_engine, settings, reader, sid, NORMAL)
    assert not queued.saved and "no analysis" in queued.message


def test_a_claim_is_renewed_while_the_screen_is_open_and_lapses_after(settings, db_engine):
    from db.claims import CLAIM_LEASE
    from services.reading import keep_claim, open_study

    (sid,) = analysed_studies(db_engine, FLAGGED, 1)
    reader = create_user(db_engine, "ann", "long enough password")
    assert not open_study(db_engine, settings, reader, sid).read_only
    assert keep_claim(db_engine, reader, sid)
    with db_engine.connect() as conn:
        claim = conn.execute(select(ReadClaim.claimed_at, ReadClaim.expires_at)).one()
    assert claim.expires_at - claim.claimed_at >= CLAIM_LEASE - timedelta(seconds=1)
    run_write(db_engine, lambda s: s.execute(update(ReadClaim).values(expires_at=ReadClaim.claimed_at)))
    assert not keep_claim(db_engine, reader, sid)  # lapsed: the screen must open it again
