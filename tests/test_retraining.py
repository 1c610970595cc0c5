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


def _build_site(folder, names, data_dir, analyzer, labels_csv=NIH_LABELS) -> dict:
    """Ingest ``names`` from ``folder``, let the worker analyse them, import their labels."""
    from db.bootstrap import open_database
    from db.queue import queue_counts
    from services.ingest import ingest_upload
    from services.reference_labels import import_labels
    from services.worker import Worker

    settings = make_settings(data_dir, tta_views=("identity",))
    engine = open_database(settings)
    for name in names:
        assert ingest_upload(engine, settings, name, (folder / name).read_bytes())[0].ok
    worker = Worker(settings, engine, analyzer, worker_id="site-test")
    worker.announce_model()
    while queue_counts(engine)["queued"]:
        worker.run_once()
    import_labels(engine, labels_csv, actor="test")
    return {"settings": settings, "engine": engine, "n": len(names), "worker": worker}


@pytest.fixture(scope="module")
def site(tmp_path_factory, identity_analyzer):
    folder = shared("nih", "dev512")
    names = [
        r["Image Index"]
        for r in csv.DictReader(open(DEFAULT_MODEL / "training_images.csv"))
        if r["source"] == "dev512" and r["split"] in ("val", "test")
    ]
    built = _build_site(folder, names, tmp_path_factory.mktemp("site") / "data", identity_analyzer)
    yield built
    built["engine"].dispose()


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
    reference = card.evaluation["reference_comparison"]  # nothing forgotten: the project's own NIH test images
    assert reference["studies"] == len((DEFAULT_MODEL / "test_images.txt").read_text().split())
    assert reference["mean_auc_findings"]["mean_a"] == pytest.approx(_reference_mean_auc(), abs=1e-9)
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


def _reference_mean_auc() -> float:
    """The shipped head's mean AUC over findings on its held-out test images, from the kept
    features, computed here independently of the comparison code."""
    from sklearn.metrics import roc_auc_score

    from core.linear_head import LinearHead
    from core.model_card import ModelCard
    from training.head_weights import read_head

    card = ModelCard.load(DEFAULT_MODEL)
    data = np.load(DEFAULT_MODEL / "reference_features.npz")
    kernel, bias = read_head(DEFAULT_MODEL / card.weights_file, len(card.labels))
    probs = LinearHead(kernel, bias, card.calibration, card.labels).probabilities(data["features"])
    truth = data["truth"]
    aucs = [
        roc_auc_score(truth[:, j], probs[:, j])
        for j, label in enumerate(card.labels)
        if label != "No Finding" and 2 <= truth[:, j].sum() <= len(truth) - 2  # as DeLong needs
    ]
    return float(np.mean(aucs))


def _analyse_queue(site) -> None:
    from db.queue import queue_counts

    site["worker"].follow_current_model()
    while queue_counts(site["engine"])["queued"]:
        site["worker"].run_once()


def test_a_shadow_run_is_stored_never_shown_and_compared_once_read(site, tmp_path):
    from sqlalchemy import func, select

    from db import models as registry
    from db import shadow
    from db.schema import Prediction, ShadowScore, Study
    from services import model_loop, shadow_runs
    from services.ingest import ingest_upload
    from services.reference_labels import import_labels
    from services.retraining import retrain

    engine, settings = site["engine"], site["settings"]
    _analyse_queue(site)
    candidate = retrain(engine, settings, tmp_path / "shadowed", actor="admin")
    shadow_runs.start(engine, candidate.card.name, actor="admin")
    assert registry.shadow_model(engine).name == candidate.card.name
    current = registry.current_model(engine)
    folder = shared("nih", "full")
    new = sorted(p.name for p in folder.glob("*.png"))
    ids = [ingest_upload(engine, settings, name, (folder / name).read_bytes())[0].study_id for name in new]
    _analyse_queue(site)
    with engine.connect() as conn:
        versions = set(conn.execute(select(Prediction.model_version).where(Prediction.study_id.in_(ids))).scalars())
        scored = set(conn.execute(select(ShadowScore.study_id).where(ShadowScore.model_name == candidate.card.name)))
        statuses = set(conn.execute(select(Study.status).where(Study.id.in_(ids))).scalars())
        total_predictions = conn.execute(select(func.count()).select_from(Prediction)).scalar_one()
    assert versions == {current.version}  # readers and triage see the current model only
    assert {r[0] for r in scored} == set(ids) and statuses == {"done"}
    assert shadow.count(engine, candidate.card.name) == len(ids)
    # the shadow scores are the candidate's head on the features kept for the current model
    rows = shadow.scores(engine, candidate.card.name)
    kept = __import__("db.results", fromlist=["stored_features"]).stored_features(engine, current.version, ids)
    head = shadow_runs.ShadowScorers().get(engine, current.version).head
    np.testing.assert_allclose(rows.probabilities, head.probabilities(kept.features), atol=1e-6)
    assert model_loop.comparison(engine, candidate.card.name)["prospective"] is None  # nobody has read them yet
    import_labels(engine, NIH_LABELS, actor="test")  # the reads arrive
    report = model_loop.comparison(engine, candidate.card.name)
    assert report["status"] == "shadow" and report["prospective"]["studies"] == len(ids)
    assert report["prospective"]["cohort"].startswith("prospective")
    assert shadow_runs.stop(engine, actor="admin").name == candidate.card.name
    assert registry.shadow_model(engine) is None
    with engine.connect() as conn:  # ending the run keeps what it stored; the study rows are untouched
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == total_predictions


def test_a_candidate_fitted_on_shuffled_reads_is_refused_by_the_gate(tmp_path, capsys, monkeypatch, identity_analyzer):
    """Reads that carry no information (labels shuffled across the fitting patients, true on
    the held-out ones) give a head that has lost the parent's signal: the gate refuses it and
    ``cxr models promote`` exits non-zero with the reason. The site is every image of
    ``nih/small64`` (843 images, 200 patients): large enough that most labels are refitted
    rather than kept; most of them were the default model's training images, so the parent
    has clear signal there to lose (this site measures the gate, not the model)."""
    import pandas as pd
    from sqlalchemy import select

    from cli.main import main
    from core.labels import LABELS
    from db import models as registry
    from db.schema import Study
    from services.retraining import ensure_registered
    from services.site_labels import site_cohort
    from tests.conftest import settings_env
    from training.site_cohort import Part

    folder = shared("nih", "small64")
    names = sorted(p.name for p in folder.glob("*.png"))
    table = pd.read_csv(NIH_LABELS)
    table = table[table["Image Index"].isin(set(names))].reset_index(drop=True)
    true_labels = tmp_path / "true.csv"
    table.to_csv(true_labels, index=False)
    site = _build_site(folder, names, tmp_path / "data", identity_analyzer, true_labels)
    engine, settings = site["engine"], site["settings"]
    current = ensure_registered(engine, settings)
    cohort = site_cohort(engine, current.version, LABELS)
    with engine.connect() as conn:
        name_of = dict(conn.execute(select(Study.id, Study.original_name)).all())
    held_out = {name_of[int(s)] for s in cohort.study_ids[cohort.part(Part.TEST)]}
    fitting = ~table["Image Index"].isin(held_out)
    rng = np.random.default_rng(7)
    table.loc[fitting, "Finding Labels"] = rng.permutation(table.loc[fitting, "Finding Labels"].to_numpy())
    shuffled = tmp_path / "shuffled.csv"
    table.to_csv(shuffled, index=False)
    from services.reference_labels import import_labels

    import_labels(engine, shuffled, actor="test")
    for key, value in settings_env(settings, CXR_TTA_VIEWS="identity").items():
        monkeypatch.setenv(key, value)
    assert main(["retrain", "--out", str(tmp_path / "noise")]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    card = json.loads((tmp_path / "noise" / "model_card.json").read_text())
    assert any(f["action"] == "refit" for f in card["training"]["site_retraining"]["labels"])
    assert main(["models", "compare", folder, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not report["gate"]["passed"] and report["gate"]["reasons"]
    assert main(["models", "promote", folder]) == 3
    assert "gate refuses" in capsys.readouterr().err
    assert registry.current_model(engine).name == current.name
    engine.dispose()
