"""The Model page's closed loop for an admin: the registered versions, a retraining job
started and cancelled from the page (a worker runs it), the gate's rule stated."""

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, app_settings, make_settings


def test_admin_starts_and_cancels_retraining_and_sees_the_versions(tmp_path):
    from core.promotion import RULE
    from db import models as registry
    from db.bootstrap import open_database
    from db.users import create_user

    settings = make_settings(tmp_path / "data")
    engine = open_database(settings)
    admin = create_user(engine, "root", "correct horse battery", "admin")
    reader = create_user(engine, "rita", "correct horse battery")
    with app_settings(settings):
        page = AppTest.from_file(str(ROOT / "pages" / "model.py"), default_timeout=60)
        page.session_state["user_id"] = reader.id
        page.run()
        assert not page.exception and not [b for b in page.button if b.key == "retrain_start"]
        page = AppTest.from_file(str(ROOT / "pages" / "model.py"), default_timeout=60)
        page.session_state["user_id"] = admin.id
        page.run()
        assert not page.exception
        assert any(RULE in c.value for c in page.caption)
        assert [m.status for m in registry.list_models(engine)] == ["current"]  # the running model, registered
        page.button(key="retrain_start").click().run()
        (job,) = registry.jobs(engine)
        assert job.status == "queued" and job.requested_by == "root"
        page.run()  # the page shows the queued job and its cancel button
        page.button(key="retrain_cancel").click().run()
        assert registry.jobs(engine)[0].status == "cancelled"
    engine.dispose()
