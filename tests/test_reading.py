"""A reader's day (issue 13) on a seeded database: per-reader queues and "Read next",
verdict rules, the double-click guard, analytics guard rails and account administration."""

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core.labels import LABELS, NO_FINDING
from db.schema import AuditEvent, ThresholdSet, Verdict
from tests.conftest import ROOT, app_settings, make_settings, shared


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from bench.seed import seed
    from db.bootstrap import open_database
    from db.users import create_user

    settings = make_settings(tmp_path_factory.mktemp("reading") / "data", reads_required=2)
    engine = open_database(settings)
    seed(
        engine,
        settings.data_dir,
        shared("nih", "full", "00000001_000.png"),
        30,
        reviewed_fraction=0.3,
        triage=settings.triage(),
    )  # "bench" (an admin) has read about a third
    readers = [create_user(engine, name, "long enough password") for name in ("rev1", "rev2")]
    with app_settings(settings):
        yield {"settings": settings, "engine": engine, "readers": readers}
    engine.dispose()


def _page(path: str, user, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.session_state["user_id"] = user.id
    for key, value in state.items():
        at.session_state[key] = value
    return at


def _flags(engine, sid: int) -> dict[str, bool]:
    from db.reviews import load_study

    case = load_study(engine, sid, 0)
    return dict(zip(case.predictions["label"], case.predictions["flagged"].astype(bool), strict=True))


def test_read_next_never_returns_a_study_the_reader_has_read(site):
    from core.verdict_rules import normal_study
    from db.worklist import WorklistFilter, worklist
    from services.reading import read_next, save_read

    engine, settings, reader = site["engine"], site["settings"], site["readers"][0]
    read = set()
    for _ in range(6):
        flt = WorklistFilter(reader_id=reader.id, queue="to_read", reads_required=settings.reads_required)
        top = int(worklist(engine, flt, settings.triage(), limit=1)["id"].iloc[0])
        sid = read_next(engine, settings, reader)
        assert sid == top and sid not in read  # one ordering: the worklist's top is what "Read next" claims
        assert save_read(engine, settings, reader, sid, normal_study(_flags(engine, sid))).saved
        read.add(sid)
    mine = worklist(engine, WorklistFilter(reader_id=reader.id), settings.triage())
    assert set(mine.loc[mine["read_by_me"], "id"]) >= read
    assert list(mine["read_by_me"]) == sorted(mine["read_by_me"])  # the reader's unread studies first


def test_second_read_queue_holds_studies_another_reader_read(site):
    from db.worklist import WorklistFilter, worklist

    engine, settings = site["engine"], site["settings"]
    second = worklist(
        engine,
        WorklistFilter(reader_id=site["readers"][1].id, queue="second_read", reads_required=2),
        settings.triage(),
    )
    assert len(second) > 0 and (second["reads"] == 1).all() and not second["read_by_me"].any()


def test_review_opens_the_study_read_next_would(site):
    from db.worklist import next_candidates

    reader = site["readers"][1]
    expected = next_candidates(site["engine"], -1, site["settings"].triage(), reader.id, 2)[0]
    at = _page("pages/review.py", reader).run()
    assert not at.exception
    assert at.title[0].value == f"Review: study {expected}"
    assert at.query_params["study"] == str(expected)  # pinned: a rerun cannot show another study


def test_a_contradictory_verdict_is_refused(site):
    from core.verdict_rules import normal_study
    from services.reading import read_next, save_read

    engine, reader = site["engine"], site["readers"][1]
    sid = read_next(engine, site["settings"], reader)
    flags = _flags(engine, sid)
    verdicts = normal_study(flags)  # No Finding present ...
    verdicts["Mass"] = "correct" if flags["Mass"] else "missed"  # ... and a mass present
    outcome = save_read(engine, site["settings"], reader, sid, verdicts)
    assert not outcome.saved and outcome.message.startswith("Not saved:") and "No Finding" in outcome.message
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(func.count())
                .select_from(Verdict)
                .where(Verdict.study_id == sid, Verdict.reviewer_id == reader.id)
            ).scalar_one()
            == 0
        )


def test_a_marked_read_stores_unmarked_findings_absent_and_points_of_present_ones(site):
    from core.verdict_rules import Mark
    from services.reading import read_next, save_marked_read

    engine, reader = site["engine"], site["readers"][1]
    sid = read_next(engine, site["settings"], reader)
    flags = _flags(engine, sid)
    findings = [lab for lab in LABELS if lab != NO_FINDING]
    present, absent, unmarked = findings[0], findings[1], findings[2]
    marks = {present: Mark(0.25, 0.5), absent: Mark(0.5, 0.5)}  # a point left on a finding marked absent
    outcome = save_marked_read(
        engine, site["settings"], reader, sid, {present: "present", absent: "absent"}, marks, "a note"
    )
    assert outcome.saved and outcome.message == f"Saved your verdict on study {sid}."
    with engine.connect() as conn:
        rows = {
            r.label: r
            for r in conn.execute(
                select(Verdict.label, Verdict.present, Verdict.verdict, Verdict.mark_x).where(
                    Verdict.study_id == sid, Verdict.reviewer_id == reader.id
                )
            )
        }
    assert set(rows) == set(LABELS)
    assert rows[present].present and rows[present].mark_x == pytest.approx(0.25)
    assert not rows[absent].present and rows[absent].mark_x is None  # no point for an absent finding
    assert not rows[unmarked].present and not rows[NO_FINDING].present  # a finding present: not normal
    assert rows[unmarked].verdict == ("incorrect" if flags[unmarked] else "correct")
    again = save_marked_read(engine, site["settings"], reader, sid, {}, {}, None)
    assert not again.saved and again.message.startswith("Not saved:")  # one read per reader


def test_a_marked_read_naming_a_label_the_study_lacks_is_refused(site):
    from services.reading import read_next, save_marked_read

    engine, reader = site["engine"], site["readers"][1]
    sid = read_next(engine, site["settings"], reader)
    outcome = save_marked_read(engine, site["settings"], reader, sid, {"Dragon": "present"}, {}, None)
    assert not outcome.saved and "Dragon" in outcome.message


def test_threshold_save_on_too_few_positives_is_refused_with_the_reason(site):
    admin_id = 1  # the seeded "bench" admin
    at = _page("pages/analytics.py", type("U", (), {"id": admin_id})(), an_tab="Operating points").run()
    assert not at.exception
    at.button(key="op_save").click().run()
    assert any("Not saved" in e.value and "20 positives" in e.value for e in at.error)
    with site["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(ThresholdSet)).scalar_one() == 0
    tables = [df.value for df in at.dataframe if "current_threshold" in df.value.columns]
    assert tables and {"n", "positives", "sensitivity_ci", "specificity_ci"} <= set(tables[0].columns)
    assert str(tables[0]["positives"].dtype).startswith("int")


def test_admin_changes_a_role_and_resets_a_password_audited(site):
    from db.users import authenticate

    engine = site["engine"]
    at = _page("pages/admin.py", type("U", (), {"id": 1})()).run()
    at.selectbox(key="admin_who").set_value("rev2")
    at.selectbox(key="admin_action").set_value("make admin").run()
    at.button(key="admin_apply").click().run()
    assert not at.exception and any("now admin" in s.value for s in at.success)
    users = at.dataframe[0].value
    assert users.set_index("username").loc["rev2", "role"] == "admin"  # the table is current
    at.selectbox(key="admin_action").set_value("reset password").run()
    at.text_input(key="admin_new_password").input("a brand new password").run()
    at.button(key="admin_apply").click().run()
    assert authenticate(engine, "rev2", "a brand new password").username == "rev2"
    with engine.connect() as conn:
        actions = list(conn.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())
        details = [str(d) for d in conn.execute(select(AuditEvent.detail)).scalars()]
    assert "user_role_changed" in actions and "user_password_reset" in actions
    assert not any("brand new" in d for d in details)


def test_readers_who_disagree_put_the_study_in_the_adjudication_queue(site):
    from core.verdict_rules import normal_study
    from db.users import create_user
    from db.worklist import WorklistFilter, worklist
    from services.reading import save_read

    engine, settings = site["engine"], site["settings"]
    rev1 = site["readers"][0]
    rev2 = create_user(engine, "rev3", "long enough password")  # a reviewer, not an adjudicator
    unread = worklist(engine, WorklistFilter(reader_id=rev1.id, queue="to_read", reads_required=2), settings.triage())
    sid = int(unread.loc[unread["reads"] == 0, "id"].iloc[0])  # nobody has read it, no adjudicator either
    flags = _flags(engine, sid)
    assert save_read(engine, settings, rev1, sid, normal_study(flags)).saved
    other = normal_study(flags)
    other[NO_FINDING] = "incorrect" if flags[NO_FINDING] else "correct"
    other["Effusion"] = "correct" if flags["Effusion"] else "missed"
    assert save_read(engine, settings, rev2, sid, other).saved
    queue = worklist(engine, WorklistFilter(reader_id=1, queue="adjudication", reads_required=2), settings.triage())
    assert sid in set(queue["id"])


def test_verdict_for_is_the_inverse_of_present():
    """The keyboard's present/absent keys store the verdict that `present` reads back."""
    from core.verdict_rules import present, verdict_for

    for flagged in (True, False):
        for is_present in (True, False):
            assert present(flagged, verdict_for(flagged, is_present)) is is_present
