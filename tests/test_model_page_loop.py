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


def test_admin_runs_a_candidate_in_shadow_and_ends_the_run(tmp_path):
    """A candidate trained from the current model starts and ends a shadow run from the
    page; a model trained from another parent is refused with the reason."""
    import json
    import shutil

    from core.model_card import ModelCard
    from db import models as registry
    from db.bootstrap import open_database
    from db.users import create_user
    from services.retraining import ensure_registered

    settings = make_settings(tmp_path / "data")
    engine = open_database(settings)
    admin = create_user(engine, "root", "correct horse battery", "admin")
    current = ensure_registered(engine, settings)
    folders = {}
    for name, parent in (("site-candidate", current.version), ("foreign", "0123456789ab")):
        folder = tmp_path / name
        shutil.copytree(settings.model_dir, folder)
        card = json.loads((folder / "model_card.json").read_text())
        card["name"], card["training"]["site_retraining"] = name, {"parent_version": parent}
        (folder / "model_card.json").write_text(json.dumps(card))
        folders[name] = folder
        registry.register(
            engine, name, ModelCard.load(folder).version, str(folder), registry.ModelStatus.CANDIDATE, "t"
        )
    with app_settings(settings):
        page = AppTest.from_file(str(ROOT / "pages" / "model.py"), default_timeout=60)
        page.session_state["user_id"] = admin.id
        page.run()
        page.selectbox(key="candidate_pick").select("foreign").run()
        page.button(key="shadow_start").click().run()
        assert registry.shadow_model(engine) is None
        assert any("cannot run in shadow" in e.value for e in page.error)
        page.selectbox(key="candidate_pick").select("site-candidate").run()
        page.button(key="shadow_start").click().run()
        assert registry.shadow_model(engine).name == "site-candidate"
        assert any(m.value.startswith("site\\-candidate runs in shadow") for m in page.success)  # plain text
        page.run()
        assert any("Running in shadow on 0 new studies" in i.value for i in page.info)
        page.button(key="shadow_stop").click().run()
        assert registry.shadow_model(engine) is None
        assert {m.name: m.status for m in registry.list_models(engine)}["site-candidate"] == "candidate"
    engine.dispose()
