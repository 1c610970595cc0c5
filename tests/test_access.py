"""Access control and injection: reviewers cannot reach admin actions, nobody without a
session sees data, and text filters are bound parameters."""

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.schema import Study, User
from tests.conftest import ROOT, app_settings, make_settings, shared

INJECTIONS = [
    "' OR 1=1 --",
    "%",
    "_",
    '"; DROP TABLE studies; --',
    "x' UNION SELECT password_hash FROM users --",
    "%' OR '1'='1",
    "\\",
    "study_0000%",
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    from bench.seed import seed
    from db.bootstrap import open_database
    from db.users import create_user

    settings = make_settings(tmp_path_factory.mktemp("access") / "data")
    engine = open_database(settings)
    seed(
        engine,
        settings.data_dir,
        shared("nih", "full", "00000001_000.png"),
        50,
        reviewed_fraction=0.2,
        triage=settings.triage(),
    )
    admin = create_user(engine, "admin2", "correct horse battery", "admin")
    reviewer = create_user(engine, "rev", "another long password")
    with app_settings(settings):
        yield {"engine": engine, "admin": admin, "reviewer": reviewer, "triage": settings.triage()}
    engine.dispose()


def _run(page, user=None, **state):
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    if user:
        at.session_state["user_id"] = user.id
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def test_reviewer_navigation_has_no_admin_page(seeded):
    from dashboard.navigation import page_files

    assert "pages/admin.py" not in page_files(seeded["reviewer"])
    assert "pages/admin.py" in page_files(seeded["admin"])
    for user in (seeded["reviewer"], seeded["admin"]):
        assert not _run("Home.py", user).exception


@pytest.mark.parametrize("page", ["pages/admin.py"])
def test_admin_page_refused_for_reviewer(seeded, page):
    at = _run(page, seeded["reviewer"])
    assert any("for administrators" in e.value for e in at.error)
    assert not at.dataframe and not at.button


def test_reviewer_sees_no_export_or_threshold_controls(seeded):
    at = _run("pages/analytics.py", seeded["reviewer"], an_tab="Operating points")
    assert not at.exception
    assert "op_save" not in {b.key for b in at.button}
    at = _run("pages/analytics.py", seeded["reviewer"], an_tab="Export")
    assert not at.exception
    assert not at.get("download_button") and "prep_verdicts" not in {b.key for b in at.button}


def test_admin_has_the_controls(seeded):
    at = _run("pages/analytics.py", seeded["admin"], an_tab="Operating points")
    assert not at.exception
    assert "op_save" in {b.key for b in at.button}
    at = _run("pages/analytics.py", seeded["admin"], an_tab="Export")
    assert len(at.get("download_button")) == 1 and "prep_verdicts" in {b.key for b in at.button}


def test_analytics_runs_only_the_open_tab(seeded):
    """Lazy tabs: the page's first load computes and sends one section, not seven."""
    at = _run("pages/analytics.py", seeded["admin"])
    assert not at.exception
    assert "op_save" not in {b.key for b in at.button} and not at.get("download_button")


@pytest.mark.parametrize("text", INJECTIONS)
def test_worklist_name_filter_is_a_bound_parameter(seeded, text):
    from db.worklist import WorklistFilter, worklist

    df = worklist(seeded["engine"], WorklistFilter(name_contains=text), seeded["triage"])
    # '%' and '_' match only themselves: every seeded name has a literal '_', none a '%'
    expected = 50 if text == "_" else 0
    assert len(df) == min(expected, 200), (text, df["original_name"].tolist())
    with seeded["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(Study)).scalar_one() == 50
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 3


# the page passes the text to the same bound query the test above drives with every string
@pytest.mark.parametrize("text", ["_", "%' OR '1'='1", "x' UNION SELECT password_hash FROM users --"])
def test_injection_in_page_text_filters(seeded, text):
    from db.worklist import WorklistFilter, worklist

    at = _run("pages/worklist.py", seeded["reviewer"])
    at.text_input(key="wl_name").input(text).run()
    assert not at.exception
    unread = len(
        worklist(seeded["engine"], WorklistFilter(reader_id=seeded["reviewer"].id, queue="to_read"), seeded["triage"])
    )  # the page opens on the reader's To-read queue
    assert not at.dataframe or len(at.dataframe[0].value) == (unread if text == "_" else 0)


def test_audit_filter_is_a_pick_list_of_recorded_actions(seeded):
    at = _run("pages/admin.py", seeded["admin"])
    assert not at.exception
    picker = at.selectbox(key="audit_action")
    assert "upload" in picker.options and "user_created" in picker.options
    picker.set_value("user_created").run()
    trail = at.dataframe[-1].value
    assert set(trail["action"]) == {"user_created"} and len(trail) == 3
    assert all("password" not in str(df.value.to_dict()) for df in at.dataframe)


def test_literal_wildcards_match_literally(seeded):
    from db.worklist import WorklistFilter, worklist

    assert len(worklist(seeded["engine"], WorklistFilter(name_contains="study_00001"), seeded["triage"])) == 10


def test_first_run_form_only_while_no_user_exists(tmp_path):
    with app_settings(make_settings(tmp_path / "fresh")):
        at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60).run()
        assert any("create the first administrator" in i.value for i in at.info)
        at.text_input[0].input("root-admin")
        at.text_input[1].input("short")
        at.button[0].click().run()
        assert any("at least" in e.value for e in at.error) and "user_id" not in at.session_state
        at.text_input[1].input("a long enough password")
        at.button[0].click().run()
        assert "user_id" in at.session_state
        again = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60).run()
        assert not any("first administrator" in i.value for i in again.info)  # gone once a user exists
        assert again.text_input(key="sign_in_user") is not None


def test_worklist_filters_partition_the_studies(seeded):
    from datetime import datetime, timedelta

    from db.worklist import WorklistFilter, worklist

    engine, triage = seeded["engine"], seeded["triage"]
    everything = worklist(engine, WorklistFilter(), triage)
    reviewed = worklist(engine, WorklistFilter(reviewed=True), triage)
    unreviewed = worklist(engine, WorklistFilter(reviewed=False), triage)
    assert len(everything) == 50 and len(reviewed) + len(unreviewed) == 50
    assert (reviewed["reads"] >= 1).all() and (unreviewed["reads"] == 0).all()
    assert len(worklist(engine, WorklistFilter(reviewer_id=1), triage)) == len(reviewed)
    mass = worklist(engine, WorklistFilter(finding="Mass"), triage)
    assert 0 < len(mass) < 50 and mass["flagged"].str.contains("Mass").all()
    future = datetime.now() + timedelta(days=1)
    assert worklist(engine, WorklistFilter(date_from=future), triage).empty
    assert len(worklist(engine, WorklistFilter(date_to=future), triage)) == 50


def test_a_password_reset_or_a_disable_ends_open_sessions(tmp_path):
    """An open session (state held on the server) ends at its next interaction once the
    account's password is reset, or it is disabled and enabled again."""
    from db.bootstrap import open_database
    from db.users import create_user, reset_password, session_epoch, set_active

    settings = make_settings(tmp_path / "data")
    engine = open_database(settings)
    user = create_user(engine, "carol", "correct horse battery")
    with app_settings(settings):
        for end in (
            lambda: reset_password(engine, "carol", "a brand new password", "admin"),
            lambda: (set_active(engine, "carol", False, "admin"), set_active(engine, "carol", True, "admin")),
        ):
            at = _run("pages/worklist.py", user, session_epoch=session_epoch(engine, user.id))
            assert not at.exception and "Please sign in" not in [w.value for w in at.warning]
            end()
            at.run()
            assert "Please sign in to see this page." in [w.value for w in at.warning]
            assert "user_id" not in at.session_state
    engine.dispose()
