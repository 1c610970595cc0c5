"""Streamlit AppTest for every page, on a database filled by the real engine and model."""

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.labels import LABELS
from db.schema import AuditEvent
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


def _reader_data(at: AppTest) -> dict:
    """What the review page sent its reading component (the component's data)."""
    import json

    (component,) = at.get("bidi_component")
    return json.loads(component.proto.json)


def test_review_sends_the_study_to_the_reading_component(app_db):
    sid = app_db["ids"]["cr_chest.dcm"]
    at = _app("pages/review.py", app_db["reviewer"], study_id=sid).run()
    assert not at.exception
    assert "not a diagnosis" in _text(at)
    data = _reader_data(at)
    assert data["study_id"] == sid and not data["read_only"]
    assert sorted(r["label"] for r in data["rows"]) == sorted(LABELS)
    flags = [r["flagged"] for r in data["rows"]]
    assert flags == sorted(flags, reverse=True)  # flagged rows first
    (image,) = data["images"]
    assert (
        image["url"].startswith("/") and image["spacing"] and set(image["presets"]) == {"lung", "mediastinum", "bone"}
    )
    with app_db["engine"].connect() as conn:
        from db.schema import Study

        width, height = conn.execute(select(Study.width, Study.height).where(Study.id == sid)).one()
    assert (image["cols"], image["rows"]) == (width, height)  # full resolution, not a preview
    assert "No Finding" not in data["heatmaps"]  # a heatmap says where a finding is
    assert set(data["heatmaps"]) == set(LABELS) - {"No Finding"}  # any finding on request, flagged or not
    assert data["prefetch"] and all(u.startswith("/") for u in data["prefetch"])  # the next study, fetched early


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


def test_a_study_the_reader_has_read_opens_read_only_with_their_verdicts(app_db):
    from core.verdict_rules import normal_study
    from services.reading import save_read

    sid, _ = _study_with(app_db, True, app_db["admin"])
    case_flags = {
        r["label"]: r["flagged"]
        for r in _reader_data(_app("pages/review.py", app_db["admin"], study_id=sid).run())["rows"]
    }
    saved = save_read(app_db["engine"], app_db["settings"], app_db["admin"], sid, normal_study(case_flags))
    assert saved.saved, saved.message
    data = _reader_data(_app("pages/review.py", app_db["admin"], study_id=sid).run())
    assert data["read_only"] and data["reason"] and data["prefetch"] == []
    assert {r["label"]: r["state"] for r in data["rows"]} == {
        lab: "present" if lab == "No Finding" else "absent" for lab in case_flags
    }


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
    assert 0.0 <= _reader_data(at)["abnormal"] <= 1.0
    scores = at.dataframe[0].value
    assert "threshold basis" in scores.columns
    assert scores["threshold basis"].str.contains("positives").all()
