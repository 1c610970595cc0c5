"""The PACS service consumes the worker's durable outbox: a DICOM study's stored results
carry one job, recorded in the results' own transaction; the service builds the study's
SR and overlays once, however many consumers run, retries a failed build with back-off
and gives it up, audited, after its attempts. SQLite and PostgreSQL."""

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select, update

from core.labels import LABELS
from tests.dicom_factory import make_dicom

DESTINATION = "PACS@127.0.0.1:11112"  # never contacted here: these tests build, they do not send


@pytest.fixture
def site(settings):
    from db.bootstrap import open_database

    settings = replace(settings, dicom_destination=DESTINATION)
    engine = open_database(settings)
    yield settings, engine
    engine.dispose()


def _radiograph(seed: int) -> np.ndarray:
    """A 12-bit image with the structure decode accepts (not flat, not elongated)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:224]
    return ((np.sin(x / 17.0) + np.cos(y / 23.0) + 2) * 900 + rng.integers(0, 200, (256, 224))).astype(np.uint16)


def _ingest(settings, engine, n: int = 1, dicom: bool = True) -> int:
    from PIL import Image

    from services.ingest import ingest_upload

    study_uid, series_uid = generate_uid(), generate_uid()
    sid = None
    for i in range(n):
        if dicom:
            name, data = (
                f"i{i}.dcm",
                make_dicom(_radiograph(i), StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, PatientID="P1"),
            )
        else:
            import io

            buf = io.BytesIO()
            Image.fromarray((_radiograph(i) >> 4).astype(np.uint8)).save(buf, format="PNG")
            name, data = f"i{i}.png", buf.getvalue()
        [result] = ingest_upload(engine, settings, name, data, actor="test")
        assert result.study_id is not None, result.message
        sid = result.study_id
    return sid


def _analysis(flagged: tuple[str, ...]):
    from core.analysis import Analysis

    probabilities = {lab: (0.9 if lab in flagged else 0.1) for lab in LABELS}
    cams = np.random.default_rng(0).random((len(LABELS), 7, 7)).astype(np.float32)
    return Analysis(probabilities, dict.fromkeys(LABELS, 0.0), list(flagged), cams, 224, 256, 1)


def _analyse(settings, engine, worker: str = "W", flagged=("Mass", "Effusion"), to_pacs: bool = True):
    """Claim every queued study and store results for it the way the worker does (``to_pacs``:
    the worker's ``results_go_to_pacs``)."""
    from core.model_card import ModelCard
    from db import queue
    from db.studies import analysed_instances
    from services.study_results import Storing, store_study

    card = ModelCard.load(settings.model_dir)
    how = Storing(card, dict(card.thresholds), card.threshold_version, settings.triage(), worker, to_pacs)
    claimed = queue.claim_batch(engine, worker, 10, 60, 3)
    images = analysed_instances(engine, [c.id for c in claimed])
    return [
        store_study(engine, settings.data_dir, how, c, images[c.id], [_analysis(flagged)] * len(images[c.id]))
        for c in claimed
    ]


def _jobs(engine):
    from db.schema import PacsResultJob

    with engine.connect() as conn:
        return conn.execute(select(PacsResultJob.study_id, PacsResultJob.done_at, PacsResultJob.last_error)).all()


def test_a_dicom_studys_stored_results_carry_one_job_a_png_study_none(site):
    settings, engine = site
    dicom_study, png_study = _ingest(settings, engine), _ingest(settings, engine, dicom=False)
    stored = _analyse(settings, engine)
    assert all(r is not None for r in stored)
    assert [(sid, done) for sid, done, _ in _jobs(engine)] == [(dicom_study, None)]
    assert png_study != dicom_study


def test_a_lost_lease_stores_nothing_and_records_no_job(site):
    from db.schema import Study

    settings, engine = site
    sid = _ingest(settings, engine)
    with engine.begin() as conn:  # W claimed the study, then its lease went to another worker
        conn.execute(update(Study).where(Study.id == sid).values(status="processing", lease_owner="thief"))
    assert _store_claimed(settings, engine, "W", sid) is None
    assert _jobs(engine) == []
    assert _store_claimed(settings, engine, "thief", sid) is not None
    assert [s for s, _, _ in _jobs(engine)] == [sid]


def _store_claimed(settings, engine, worker: str, sid: int):
    from core.model_card import ModelCard
    from db.queue import ClaimedStudy
    from db.schema import Study
    from db.studies import analysed_instances
    from services.study_results import Storing, store_study

    card = ModelCard.load(settings.model_dir)
    how = Storing(card, dict(card.thresholds), card.threshold_version, settings.triage(), worker, True)
    with engine.connect() as conn:
        created = conn.execute(select(Study.created_at).where(Study.id == sid)).scalar_one()
    records = analysed_instances(engine, [sid])[sid]
    return store_study(
        engine, settings.data_dir, how, ClaimedStudy(sid, "", "", 1, created), records, [_analysis(("Mass",))]
    )


def test_the_service_queues_a_studys_sr_and_one_overlay_per_flagged_finding_once(site):
    from db.outbound import for_study
    from services.pacs.service import PacsResultsService

    settings, engine = site
    sid = _ingest(settings, engine)
    _analyse(settings, engine, flagged=("Mass", "Effusion"))
    first, second = PacsResultsService(engine, settings, "A"), PacsResultsService(engine, settings, "B")
    assert first.build_due().built == 1
    assert second.build_due().built == 0  # the job is closed: B finds nothing to build
    items = for_study(engine, sid)
    assert sorted(i.kind for i in items) == ["overlay", "overlay", "sr"]
    assert all(i.status == "pending" and i.destination == DESTINATION for i in items)
    assert all((settings.data_dir / i.path).is_file() for i in items)
    [(_, done, error)] = _jobs(engine)
    assert done is not None and error is None


def test_a_new_analysis_supersedes_the_open_job_and_its_unsent_objects(site):
    from db.outbound import for_study
    from db.schema import Study
    from services.pacs.service import PacsResultsService

    settings, engine = site
    sid = _ingest(settings, engine)
    _analyse(settings, engine, flagged=("Mass",))
    PacsResultsService(engine, settings, "A").build_due()
    with engine.begin() as conn:  # an admin requeues the study; the worker analyses it again
        conn.execute(update(Study).where(Study.id == sid).values(status="queued", lease_owner=None))
    _analyse(settings, engine, flagged=("Mass", "Nodule"))
    assert [done is None for _, done, _ in _jobs(engine)] == [False, True]
    PacsResultsService(engine, settings, "A").build_due()
    statuses = sorted((i.kind, i.status) for i in for_study(engine, sid))
    assert statuses.count(("sr", "superseded")) == 1 and statuses.count(("sr", "pending")) == 1
    assert sum(s == ("overlay", "pending") for s in statuses) == 2


def test_a_consumer_whose_claim_expired_queues_nothing(site):
    from db import pacs_result_jobs
    from db.outbound import for_study
    from db.schema import PacsResultJob
    from services.pacs.service import ClaimLost, PacsResultsService

    settings, engine = site
    sid = _ingest(settings, engine)
    _analyse(settings, engine)
    slow = PacsResultsService(engine, settings, "slow")
    [job] = pacs_result_jobs.claim(engine, "slow", 10, 60)
    with engine.begin() as conn:  # its lease runs out; another consumer takes the job
        conn.execute(update(PacsResultJob).values(claim_expires_at=PacsResultJob.created_at))
    assert PacsResultsService(engine, settings, "fast").build_due().built == 1
    with pytest.raises(ClaimLost):
        slow._build(job)
    assert sum(i.kind == "sr" for i in for_study(engine, sid)) == 1


def test_a_failing_build_is_retried_after_back_off_then_given_up_and_audited(site, monkeypatch):
    from db import pacs_result_jobs
    from db.schema import AuditEvent, PacsResultJob
    from services.pacs import service

    settings, engine = site
    sid = _ingest(settings, engine)
    _analyse(settings, engine)

    def unreadable(engine_, settings_, study_id):
        raise OSError(f"stored file of study {study_id} is unreadable")

    monkeypatch.setattr(service, "build_result_objects", unreadable)
    consumer = service.PacsResultsService(engine, settings, "A")
    for _ in range(pacs_result_jobs.MAX_ATTEMPTS):
        report = consumer.build_due()
        assert report.failed == 1 and report.built == 0
        assert consumer.build_due().failed == 0  # in back-off: not claimable yet
        with engine.begin() as conn:  # the back-off ends
            conn.execute(update(PacsResultJob).values(claim_expires_at=PacsResultJob.created_at - timedelta(seconds=1)))
    assert consumer.build_due().failed == 0  # given up: never claimed again
    [(_, done, error)] = _jobs(engine)
    assert done is not None and "unreadable" in error
    with engine.connect() as conn:
        events = conn.execute(select(AuditEvent.study_id).where(AuditEvent.action == "pacs_results_failed")).all()
    assert events == [(sid,)]
    from services.pacs.outbox import results_failing

    assert results_failing(engine) == 1  # Home warns


def test_a_job_whose_consumer_died_on_its_last_attempt_is_given_up_and_audited(site):
    from db import pacs_result_jobs
    from db.schema import AuditEvent, PacsResultJob
    from services.pacs.outbox import results_failing

    settings, engine = site
    sid = _ingest(settings, engine)
    _analyse(settings, engine)
    with engine.begin() as conn:  # its last claim ran out with no outcome recorded
        conn.execute(
            update(PacsResultJob).values(
                attempts=pacs_result_jobs.MAX_ATTEMPTS,
                claimed_by="dead",
                claim_expires_at=PacsResultJob.created_at - timedelta(seconds=1),
            )
        )
    assert pacs_result_jobs.claim(engine, "A", 10, 60) == []
    [(_, done, error)] = _jobs(engine)
    assert done is not None and "did not finish" in error
    assert results_failing(engine) == 1
    with engine.connect() as conn:
        events = conn.execute(select(AuditEvent.study_id).where(AuditEvent.action == "pacs_results_failed")).all()
    assert events == [(sid,)]


def test_a_worker_without_the_destination_records_the_job_once_the_pacs_service_has_announced_it(settings, site):
    """The worker and ``cxr pacs`` run apart: a worker started without CXR_DICOM_DESTINATION
    records a DICOM study's job as soon as a PACS service has recorded the site's."""
    from services.pacs.service import PacsResultsService
    from services.study_results import results_go_to_pacs

    with_destination, engine = site
    assert not results_go_to_pacs(engine, settings)  # nothing configured anywhere yet
    assert results_go_to_pacs(engine, with_destination)
    PacsResultsService(engine, with_destination).run_round()
    assert results_go_to_pacs(engine, settings)  # the bare worker now follows the site
    PacsResultsService(engine, with_destination, consumer="second").announce()  # a second service: no conflict
    assert results_go_to_pacs(engine, settings)


def test_home_says_where_dicom_results_go_once_a_pacs_service_has_recorded_it(settings, site):
    from streamlit.testing.v1 import AppTest

    from dashboard.text import plain
    from db.users import create_user
    from services.pacs.service import PacsResultsService
    from tests.conftest import ROOT, app_settings

    with_destination, engine = site
    admin = create_user(engine, "root", "correct horse battery", "admin")

    def home_captions() -> str:
        with app_settings(settings):  # the app itself has no destination of its own
            home = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=60)
            home.session_state["user_id"] = admin.id
            home.run()
            assert not home.exception
            return " ".join(c.value for c in home.caption)

    assert "No PACS service has recorded a destination" in home_captions()
    PacsResultsService(engine, with_destination).run_round()
    assert f"go back to the PACS at {plain(DESTINATION)}." in home_captions()  # as inert markdown


def test_cxr_outbox_destination_clear_stops_recording_jobs_and_closes_the_open_ones(
    settings, site, capsys, monkeypatch
):
    """A retired PACS service's destination is forgotten with ``cxr outbox destination
    --clear``: a bare worker records no more result jobs, the open ones close with nothing
    to send (not counted as failed on Home), one waiting out its back-off too, one a live
    service holds is left to it, and the clearing is audited."""
    from cli.main import main
    from db import pacs_result_jobs
    from db.schema import AuditEvent, PacsResultJob, utcnow
    from services.pacs.outbox import results_failing, site_destination
    from services.pacs.service import PacsResultsService
    from services.study_results import results_go_to_pacs
    from tests.conftest import settings_env

    with_destination, engine = site
    for key, value in settings_env(settings).items():  # the command runs without a destination of its own
        monkeypatch.setenv(key, value)
    PacsResultsService(engine, with_destination).announce()
    waiting, retrying, held = _ingest(settings, engine), _ingest(settings, engine), _ingest(settings, engine)
    _analyse(settings, engine, to_pacs=results_go_to_pacs(engine, settings))
    with engine.begin() as conn:  # a live service is building one of them right now
        conn.execute(
            update(PacsResultJob)
            .where(PacsResultJob.study_id == held)
            .values(claimed_by="live", claim_expires_at=utcnow() + timedelta(minutes=5))
        )
        conn.execute(  # another failed once and waits out its back-off (as pacs_result_jobs.fail leaves it)
            update(PacsResultJob)
            .where(PacsResultJob.study_id == retrying)
            .values(claimed_by=None, attempts=1, claim_expires_at=utcnow() + timedelta(minutes=5))
        )
    assert main(["outbox", "destination"]) == 0
    assert capsys.readouterr().out.strip() == DESTINATION
    assert main(["outbox", "destination", "--clear"]) == 0
    out = capsys.readouterr().out
    assert f"forgot {DESTINATION}" in out and "2 open result job(s) closed" in out
    assert site_destination(engine) is None and not results_go_to_pacs(engine, settings)
    jobs = {sid: (done, error) for sid, done, error in _jobs(engine)}
    for closed in (waiting, retrying):
        assert jobs[closed][0] is not None and jobs[closed][1] == pacs_result_jobs.DESTINATION_CLEARED
    assert jobs[held] == (None, None)
    assert results_failing(engine) == 0
    _ingest(settings, engine)
    _analyse(settings, engine, to_pacs=results_go_to_pacs(engine, settings))  # the site no longer sends: no job
    assert len(_jobs(engine)) == 3
    with engine.connect() as conn:
        [detail] = conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "pacs_destination_cleared")).all()
    assert detail[0] == {"destination": DESTINATION, "jobs_closed": 2}
    assert main(["outbox", "destination", "--clear"]) == 0  # twice: nothing left, nothing audited
    assert "no PACS destination was recorded" in capsys.readouterr().out
    assert main(["outbox", "destination"]) == 0
    assert "no PACS destination recorded" in capsys.readouterr().out
