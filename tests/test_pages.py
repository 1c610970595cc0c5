"""Streamlit AppTest for every page, on a database filled by the real engine and model."""

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.labels import LABELS
from db.schema import AuditEvent, Verdict
from tests.conftest import DEFAULT_MODEL, ROOT, SHARED, app_settings
from tests.populated import populate, real_study_files

pytestmark = [
    pytest.mark.skipif(not SHARED.exists(), reason="real data not available: ../shared/data is absent"),
    pytest.mark.skipif(not (DEFAULT_MODEL / "model_card.json").exists(), reason="default model not trained"),
]
PAGES = [
    "pages/home.py",
    "pages/upload.py",
    "pages/worklist.py",
    "pages/review.py",
    "pages/analytics.py",
    "pages/model.py",
    "pages/admin.py",
]


@pytest.fixture(scope="module")
def app_db(tmp_path_factory, analyzer):
    ctx = populate(tmp_path_factory.mktemp("app") / "data", analyzer, real_study_files())
    with app_settings(ctx["settings"]):
        yield ctx
    ctx["engine"].dispose()


def _app(path: str, user=None, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    if user is not None:
        at.session_state["user_id"] = user.id
    for key, value in state.items():
        at.session_state[key] = value
    return at


def _text(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.body for e in at.title]
    parts += [e.value for e in at.error] + [e.value for e in at.warning] + [e.value for e in at.info]
    parts += [e.value for e in at.success]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_no_session_never_shows_a_study(app_db, page):
    at = _app(page).run()
    assert "Please sign in" in _text(at)
    assert not at.dataframe and "00000001_000" not in _text(at)


def test_home_entry_shows_only_sign_in_and_wrong_password_fails(app_db):
    at = _app("Home.py").run()
    assert at.text_input(key="sign_in_user") is not None
    at.text_input(key="sign_in_user").input("alice")
    at.text_input(key="sign_in_password").input("wrong password!")
    at.button[0].click().run()
    assert "Wrong user name or password" in _text(at)
    assert "user_id" not in at.session_state and not at.dataframe
    at.text_input(key="sign_in_password").input("correct horse battery")
    at.button[0].click().run()
    assert at.session_state["user_id"] == app_db["admin"].id
    with app_db["engine"].connect() as conn:
        actions = list(conn.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())
    assert "sign_in_failed" in actions and actions[-1] == "sign_in"


def test_home_page_counts_and_model(app_db):
    at = _app("pages/home.py", app_db["admin"]).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Done"] == str(len(app_db["ids"]))
    assert metrics["Queued"] == "0"
    assert metrics["Device"] == "CPU"
    from core.model_card import ModelCard

    card = ModelCard.load(DEFAULT_MODEL)
    shown = "\n".join(m.value for m in at.markdown).replace("\\", "")  # markdown escapes removed
    assert card.name in shown and card.version in shown  # the full name, never cut to fit a metric box
    assert "not a diagnosis" in _text(at)


def test_worklist_orders_by_suspicion(app_db):
    at = _app("pages/worklist.py", app_db["bob"] if "bob" in app_db else app_db["reviewer"]).run()
    assert not at.exception
    df = at.dataframe[0].value
    assert len(df) == len(app_db["ids"])
    assert list(df["priority"]) == sorted(df["priority"], reverse=True)
    # at 1280x720 what a reader triages by comes first; a column empty for every row is left out
    assert list(df.columns[:6]) == ["id", "priority", "abnormal", "waiting_h", "reads", "flagged"]
    assert all(df[c].notna().any() for c in df.columns if c not in ("flagged", "read_by_me"))
    at.text_input(key="wl_name").input("cr_chest").run()
    assert list(at.dataframe[0].value["original_name"]) == ["cr_chest.dcm"]


def test_review_page_shows_scores_and_records_15_verdicts(app_db):
    sid = app_db["ids"]["cr_chest.dcm"]
    user = app_db["reviewer"]
    at = _app("pages/review.py", user, study_id=sid).run()
    assert not at.exception
    assert "not a diagnosis" in _text(at)
    scores = at.dataframe[0].value
    assert set(scores["label"]) == set(LABELS)
    assert at.slider(key="cam_opacity").value == 0.45
    assert any(s.label == "Window centre" for s in at.slider)  # DICOM gets window/level
    flagged = list(scores.loc[scores["flagged"], "label"])
    for label in flagged:
        at.radio(key=f"v_{sid}_{label}").set_value("incorrect")
    unflagged = [lab for lab in LABELS if lab not in flagged]
    at.radio(key=f"v_{sid}_{unflagged[0]}").set_value("missed")
    at.text_input(key=f"note_{sid}").input("checked at AppTest")
    at.button[-1].click().run()
    assert not at.exception
    with app_db["engine"].connect() as conn:
        rows = conn.execute(
            select(Verdict.label, Verdict.verdict, Verdict.present).where(
                Verdict.study_id == sid, Verdict.reviewer_id == user.id
            )
        ).all()
    assert len(rows) == 15
    by = {r.label: r for r in rows}
    assert all(by[lab].verdict == "incorrect" and not by[lab].present for lab in flagged)
    assert by[unflagged[0]].verdict == "missed" and by[unflagged[0]].present
    assert at.session_state["study_id"] != sid  # moved on to the next study


def _study_with(app_db, flagged: bool, reader) -> tuple[int, str]:
    """A populated study this reader may read now (claimed for them) and one of its labels
    the model flagged (or did not): whatever the model says, one of the real studies has
    one, so no test here depends on its output."""
    from db.schema import Prediction
    from services.reading import open_study

    with app_db["engine"].connect() as conn:
        rows = conn.execute(
            select(Prediction.study_id, Prediction.label)
            .where(
                Prediction.flagged.is_(flagged),
                Prediction.label != "No Finding",
                Prediction.study_id.in_(list(app_db["ids"].values())),
            )
            .order_by(Prediction.study_id, Prediction.label)
        ).all()
    for sid, label in rows:
        if not open_study(app_db["engine"], app_db["settings"], reader, int(sid)).read_only:
            return int(sid), label
    raise AssertionError(f"no readable real study has a label the model {'flagged' if flagged else 'left unflagged'}")


def test_heatmap_on_request_for_an_unflagged_label(app_db):
    sid, label = _study_with(app_db, False, app_db["reviewer"])
    at = _app("pages/review.py", app_db["reviewer"], study_id=sid).run()
    scores = at.dataframe[0].value
    unflagged = scores.loc[~scores["flagged"], "label"].tolist()
    assert label in unflagged
    assert "No Finding" not in at.selectbox(key="cam_label").options  # a heatmap is never drawn for it
    unflagged = [lab for lab in unflagged if lab != "No Finding"]
    at.selectbox(key="cam_label").set_value(unflagged[0]).run()
    assert not at.exception
    specs = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert len(specs) == 1 and f"Grad-CAM: {unflagged[0]}" in specs[0]  # the zoomable viewer shows the overlay


def test_flagged_findings_need_a_decision(app_db):
    sid, _ = _study_with(app_db, True, app_db["admin"])
    at = _app("pages/review.py", app_db["admin"], study_id=sid).run()
    scores = at.dataframe[0].value
    assert scores["flagged"].any()
    at.button[-1].click().run()
    assert "mark every flagged finding" in _text(at)


def test_model_page_shows_card(app_db):
    at = _app("pages/model.py", app_db["reviewer"]).run()
    assert not at.exception
    assert "Held-out evaluation" in " ".join(h.value for h in at.subheader)
    assert len(at.dataframe[0].value) == 15


def test_admin_page_refused_for_reviewer_and_shown_to_admin(app_db):
    at = _app("pages/admin.py", app_db["reviewer"]).run()
    assert "for administrators" in _text(at) and not at.dataframe
    at = _app("pages/admin.py", app_db["admin"]).run()
    assert not at.exception and at.dataframe


def test_upload_page_renders_queue_progress(app_db):
    at = _app("pages/upload.py", app_db["reviewer"]).run()
    assert not at.exception
    assert "Queue" in " ".join(h.value for h in at.subheader)


def test_disabled_user_session_ends(app_db):
    from db.users import create_user, set_active

    carol = create_user(app_db["engine"], "carol", "yet another password")
    at = _app("pages/worklist.py", carol).run()
    assert at.dataframe
    set_active(app_db["engine"], "carol", False, actor="alice")
    at.run()
    assert "Please sign in" in _text(at) and "user_id" not in at.session_state


@pytest.mark.parametrize("link", ["99999999999999999999", "-1", "0", "abc"])
def test_an_invalid_study_link_shows_only_its_reason(app_db, link):
    at = _app("pages/review.py", app_db["reviewer"], study_id=app_db["ids"]["cr_chest.dcm"])
    at.query_params["study"] = link
    at.run()
    assert not at.exception
    assert "The study link is not valid" in _text(at)
    assert not at.title and not at.button  # no other study shown underneath


def test_review_shows_abnormal_score_and_threshold_basis(app_db):
    sid = app_db["ids"]["cr_chest.dcm"]
    at = _app("pages/review.py", app_db["reviewer"], study_id=sid).run()
    assert not at.exception
    assert any(m.value.startswith("**P(abnormal) ") for m in at.markdown)
    scores = at.dataframe[0].value
    assert "threshold basis" in scores.columns
    assert scores["threshold basis"].str.contains("positives").all()
