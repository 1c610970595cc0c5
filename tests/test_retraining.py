"""The closed loop through the real path, on a simulated site built from the shared data:
NIH patients that no shipped model was fitted on (the default model's validation and test
patients of nih/dev512) are ingested, analysed by the worker (which keeps the features),
labelled with their reference labels, and the head is refitted on them; the candidate is a
complete model folder, compared, gated, promoted (unread studies are analysed again) and
rolled back; a cancelled job leaves nothing."""

import csv
import json

import numpy as np
import pytest

from tests.conftest import DEFAULT_MODEL, NIH_LABELS, make_settings, shared

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory, identity_analyzer):
    from db.bootstrap import open_database
    from db.queue import queue_counts
    from services.ingest import ingest_upload
    from services.reference_labels import import_labels
    from services.worker import Worker

    folder = shared("nih", "dev512")
    names = [
        r["Image Index"]
        for r in csv.DictReader(open(DEFAULT_MODEL / "training_images.csv"))
        if r["source"] == "dev512" and r["split"] in ("val", "test")
    ]
    settings = make_settings(tmp_path_factory.mktemp("site") / "data", tta_views=("identity",))
    engine = open_database(settings)
    for name in names:
        assert ingest_upload(engine, settings, name, (folder / name).read_bytes())[0].ok
    worker = Worker(settings, engine, identity_analyzer, worker_id="site-test")
    worker.announce_model()
    while queue_counts(engine)["queued"]:
        worker.run_once()
    import_labels(engine, NIH_LABELS, actor="test")
    yield {"settings": settings, "engine": engine, "n": len(names), "worker": worker}
    engine.dispose()


def test_retrain_writes_a_complete_candidate_that_loads_and_predicts(site, tmp_path):
    from core.inference import Analyzer
    from core.model_card import ModelCard
    from db import models as registry
    from services.retraining import retrain

    engine, settings = site["engine"], site["settings"]
    result = retrain(engine, settings, tmp_path / "candidate", actor="admin")
    card = ModelCard.load(result.folder)
    info = card.training["site_retraining"]
    assert info["parent_version"] == ModelCard.load(DEFAULT_MODEL).version
    counts = info["cohort_counts"]
    assert sum(c["studies"] for c in counts.values()) == site["n"]  # every site study, one part each
    assert not set(info["cohort_study_ids"]["test"]) & set(info["cohort_study_ids"]["train"])
    kept = [f for f in info["labels"] if f["action"] == "kept"]
    assert kept and all(f["reason"] for f in kept)  # rare findings keep the parent's head, with the reason
    comparison = card.evaluation["site_comparison"]
    assert comparison["studies"] == counts["test"]["studies"]
    assert card.evaluation["gate"]["passed"] == result.gate.passed
    names = {m.name: m.status for m in registry.list_models(engine)}
    assert names[card.name] == "candidate" and "current" in names.values()
    # a complete model folder: the runtime loads it and scores an image
    analyzer = Analyzer(result.folder, views=["identity"], warm_up=False)
    image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(shared("nih", "full", "00000001_000.png")))
    out = analyzer.analyse([image.astype(np.float32) / 255.0])[0]
    assert set(out.probabilities) == set(card.labels) and all(0 <= p <= 1 for p in out.probabilities.values())


def test_compare_promote_reanalyse_and_roll_back(site, tmp_path, capsys, monkeypatch):
    from cli.main import main
    from db import models as registry
    from db.queue import queue_counts
    from db.schema import AuditEvent
    from tests.conftest import settings_env

    engine, settings = site["engine"], site["settings"]
    for key, value in settings_env(settings, CXR_TTA_VIEWS="identity").items():
        monkeypatch.setenv(key, value)
    assert main(["retrain", "--out", str(tmp_path / "c2")]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["models", "compare", folder, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["site_heldout"]["studies"] > 0 and "rule" in report["gate"]
    before = registry.current_model(engine).name
    code = main(["models", "promote", folder])
    if report["gate"]["passed"]:
        assert code == 0
    else:  # refused with the reason; an explicit override is audited
        assert code == 3 and "gate refuses" in capsys.readouterr().err
        assert main(["models", "promote", folder, "--override", "site review board approved"]) == 0
    assert registry.current_model(engine).folder == folder
    assert queue_counts(engine)["queued"] == site["n"]  # no one has read them: analysed again by the new model
    site["worker"].follow_current_model()
    assert str(site["worker"].analyzer.model_dir) == folder
    assert main(["models", "rollback"]) == 0
    assert registry.current_model(engine).name == before
    with engine.connect() as conn:
        from sqlalchemy import select

        actions = set(conn.execute(select(AuditEvent.action)).scalars())
    assert {"model_promoted", "model_rolled_back", "unread_studies_requeued"} <= actions


def test_a_cancelled_job_leaves_nothing_half_written(site, tmp_path):
    from db import models as registry
    from db.queue import queue_counts
    from services.retraining import Cancelled, retrain

    engine, settings = site["engine"], site["settings"]
    site["worker"].follow_current_model()
    while queue_counts(engine)["queued"]:  # studies requeued by a promotion are analysed again
        site["worker"].run_once()
    candidates = {m.name for m in registry.list_models(engine) if m.status == "candidate"}
    calls = []

    def cancel_when_writing(fraction, message):
        calls.append(message)
        return "writing" in message

    with pytest.raises(Cancelled):
        retrain(engine, settings, tmp_path / "never", progress=cancel_when_writing)
    assert not (tmp_path / "never").exists() and not list(tmp_path.glob(".tmp-*"))
    assert {m.name for m in registry.list_models(engine) if m.status == "candidate"} == candidates
    assert any("writing" in m for m in calls)
