"""Ingest: accepted, duplicate and rejected uploads, and the bad-input corpus."""

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from db.schema import AuditEvent, Study
from services.ingest import ingest_upload
from tests.conftest import settings_env, shared
from tests.dicom_factory import make_dicom


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims a huge size (decompression bomb) with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _state(engine):
    with engine.connect() as conn:
        studies = conn.execute(select(func.count()).select_from(Study)).scalar_one()
        events = conn.execute(select(AuditEvent.action, AuditEvent.detail)).all()
    return studies, events


def test_accept_then_duplicate_returns_existing(settings, db_engine):
    data = shared("nih", "full", "00000001_000.png").read_bytes()
    first = ingest_upload(db_engine, settings, "00000001_000.png", data, actor="alice")
    again = ingest_upload(db_engine, settings, "renamed.png", data, actor="bob")
    assert first[0].status == "accepted" and again[0].status == "duplicate"
    assert again[0].study_id == first[0].study_id
    with db_engine.connect() as conn:
        study = conn.execute(select(Study.stored_path, Study.original_name, Study.status, Study.sha256)).one()
    assert study.status == "queued" and study.original_name == "00000001_000.png"
    stored = settings.data_dir / study.stored_path
    assert stored.read_bytes() == data and stored.name.startswith(study.sha256)  # content-addressed
    assert "00000001_000" not in study.stored_path


def test_zip_of_real_images_and_unsafe_names_never_become_paths(settings, db_engine):
    a = shared("other", "h0001.png").read_bytes()
    b = shared("dicom", "cr_chest.dcm").read_bytes()
    archive = _zip({"folder/h0001.png": a, "deep/er/../x.dcm": b})
    results = ingest_upload(db_engine, settings, "batch.zip", archive, actor="alice")
    assert [r.status for r in results] == ["rejected"]
    assert "leaves the archive" in results[0].message
    archive = _zip({"folder/h0001.png": a, "study.dcm": b})
    results = ingest_upload(db_engine, settings, "batch.zip", archive, actor="alice")
    assert sorted(r.status for r in results) == ["accepted", "accepted"]
    for path in settings.data_dir.rglob("*"):
        assert "folder" not in path.parts and "study" not in path.name


def _report_dicom() -> bytes:
    """A DICOM object that is not an image at all (a structured report)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _truncated(path, fraction=0.5):
    data = path.read_bytes()
    return data[: int(len(data) * fraction)]


def _bad_corpus():
    """(name, bytes, expected message fragment) for every kind of bad input."""
    rng = np.random.default_rng(7)
    png = shared("nih", "full", "00000001_000.png")
    jpg = shared("other", "16747_3_1.jpg")
    dcm = shared("dicom", "cr_chest.dcm")
    nih = np.asarray(Image.open(png).convert("L"))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", b"\0" * (150 * 1024 * 1024))
    tiny = io.BytesIO()
    Image.fromarray(nih[:16, :16]).save(tiny, format="PNG")
    return [
        ("truncated.png", _truncated(png), "truncated or corrupt"),
        ("truncated.jpg", _truncated(jpg), "truncated or corrupt"),
        ("truncated.dcm", _truncated(dcm), "DICOM"),
        ("random.bin", rng.bytes(5000), "Not a PNG, JPEG or DICOM"),
        ("empty.png", b"", "empty"),
        ("huge.png", _png_header_claiming(100000, 100000), "above the limit"),
        ("ct.dcm", make_dicom(nih.astype(np.uint16), modality="CT"), "not a plain radiograph"),
        ("nopixels.dcm", make_dicom(nih.astype(np.uint16), pixels=False), "Pixel Data is missing"),
        ("report.dcm", _report_dicom(), "no Pixel Data"),
        ("escape.zip", _zip({"../../etc/evil.png": png.read_bytes()}), "leaves the archive"),
        ("bomb.zip", bomb.getvalue(), "zip bomb"),
        ("tiny.png", tiny.getvalue(), "at least"),
        ("hand.dcm", make_dicom(nih.astype(np.uint16), BodyPartExamined="HAND"), "not a chest"),
    ]


def test_bad_inputs_rejected_with_message_and_nothing_else_changes(settings, db_engine):
    good = shared("nih", "full", "00000002_000.png").read_bytes()
    ok = ingest_upload(db_engine, settings, "good.png", good, actor="alice")[0]
    before_studies, before_events = _state(db_engine)
    files_before = sorted(p for p in settings.data_dir.rglob("*") if p.is_file() and "sqlite" not in p.name)
    corpus = _bad_corpus()
    for name, data, fragment in corpus:
        results = ingest_upload(db_engine, settings, name, data, actor="alice")
        assert len(results) == 1, name
        assert results[0].status == "rejected", name
        assert fragment.lower() in results[0].message.lower(), (name, results[0].message)
    after_studies, after_events = _state(db_engine)
    assert after_studies == before_studies
    new = after_events[len(before_events) :]
    assert [e.action for e in new] == ["upload_rejected"] * len(corpus)
    assert [e.detail["name"] for e in new] == [c[0] for c in corpus]
    files_after = sorted(p for p in settings.data_dir.rglob("*") if p.is_file() and "sqlite" not in p.name)
    assert files_after == files_before
    with db_engine.connect() as conn:
        assert conn.execute(select(Study.status).where(Study.id == ok.study_id)).scalar_one() == "queued"


def test_oversized_upload_refused_before_decoding(settings, db_engine):
    from dataclasses import replace

    small = replace(settings, max_upload_bytes=1000)
    res = ingest_upload(db_engine, small, "x.png", shared("other", "h0001.png").read_bytes())
    assert res[0].status == "rejected" and "above the limit" in res[0].message


def test_ingest_cli_reports_each_input(settings, tmp_path, capsys, monkeypatch):
    from services.ingest import main

    for key, value in settings_env(settings).items():  # the command reads its settings from the environment
        monkeypatch.setenv(key, value)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code = main([str(shared("other", "tb0005.png")), str(bad)])
    out = capsys.readouterr().out
    assert code == 1
    assert "accepted\ttb0005.png" in out and "rejected\tbad.png" in out
    assert "1 accepted, 0 duplicate, 1 rejected" in out


def _dicom(study_uid: str, view: str, sop_uid: str | None = None, seed: int = 0, **patient) -> bytes:
    import numpy as np
    from pydicom.uid import generate_uid

    from tests.dicom_factory import make_dicom

    pixels = (np.random.default_rng(seed).random((128, 128)) * 4000).astype(np.uint16)
    extra = {"SOPInstanceUID": sop_uid} if sop_uid else {}
    data = make_dicom(
        pixels,
        StudyInstanceUID=study_uid,
        SeriesInstanceUID=generate_uid(),
        ViewPosition=view,
        AccessionNumber="A-77",
        StudyDate="20261126",
        **extra,
        **patient,
    )
    if sop_uid:  # keep the file meta consistent with the dataset
        import io

        import pydicom

        ds = pydicom.dcmread(io.BytesIO(data))
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
    return data


def test_dicom_instances_join_their_study_and_laterals_are_kept_not_analysed(settings, db_engine):
    from pydicom.uid import generate_uid

    from db.studies import study_instances

    study_uid = generate_uid()
    first = ingest_upload(db_engine, settings, "pa.dcm", _dicom(study_uid, "PA", seed=1))[0]
    second = ingest_upload(db_engine, settings, "ll.dcm", _dicom(study_uid, "LL", seed=2))[0]
    other = ingest_upload(db_engine, settings, "x.png", shared("other", "tb0005.png").read_bytes())[0]
    assert first.status == second.status == other.status == "accepted"
    assert second.study_id == first.study_id != other.study_id
    assert "not analysed" in second.message and "frontal" in second.message
    images = study_instances(db_engine, first.study_id)
    assert [(i.view_position, i.analysed) for i in images] == [("PA", True), ("LL", False)]
    with db_engine.connect() as conn:
        shown = conn.execute(
            select(Study.accession_number, Study.study_date, Study.study_instance_uid).where(Study.id == first.study_id)
        ).one()
    assert tuple(shown) == ("A-77", "20261126", study_uid)


def _rejections(engine, code: str) -> list[dict]:
    from db.schema import AuditEvent

    with engine.connect() as conn:
        details = conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "upload_rejected")).scalars()
        return [d for d in details if d.get("code") == code]


def test_the_same_instance_sent_twice_is_stored_once(settings, db_engine):
    from pydicom.uid import generate_uid

    from db.studies import study_instances

    study_uid, sop_uid = generate_uid(), generate_uid()
    once = ingest_upload(db_engine, settings, "a.dcm", _dicom(study_uid, "PA", sop_uid, seed=3))[0]
    again = ingest_upload(db_engine, settings, "b.dcm", _dicom(study_uid, "PA", sop_uid, seed=3))[0]  # other bytes
    assert once.status == "accepted" and again.status == "duplicate" and again.study_id == once.study_id
    assert len(study_instances(db_engine, once.study_id)) == 1


def test_the_same_instance_uid_with_other_pixels_is_refused_and_audited(settings, db_engine):
    from pydicom.uid import generate_uid

    from db.studies import study_instances

    study_uid, sop_uid = generate_uid(), generate_uid()
    once = ingest_upload(db_engine, settings, "a.dcm", _dicom(study_uid, "PA", sop_uid, seed=3))[0]
    other = ingest_upload(db_engine, settings, "b.dcm", _dicom(study_uid, "PA", sop_uid, seed=4))[0]
    assert once.status == "accepted" and other.status == "rejected" and other.code == "instance_conflict"
    assert "other pixels" in other.message
    assert len(study_instances(db_engine, once.study_id)) == 1
    assert len(_rejections(db_engine, "instance_conflict")) == 1


def test_an_instance_of_another_patient_never_joins_the_study(settings, db_engine):
    """One StudyInstanceUID sent for two patients: the second is refused, audited and its
    files removed; the study keeps one patient's images only."""
    from pydicom.uid import generate_uid

    from db.studies import study_instances

    study_uid = generate_uid()
    a = ingest_upload(db_engine, settings, "a.dcm", _dicom(study_uid, "PA", seed=7, PatientID="PAT-A"))[0]
    files_before = sorted(p for p in settings.data_dir.rglob("*") if p.is_file() and p.suffix in (".dcm", ".png"))
    b = ingest_upload(db_engine, settings, "b.dcm", _dicom(study_uid, "PA", seed=8, PatientID="PAT-B"))[0]
    assert a.status == "accepted" and b.status == "rejected" and b.code == "patient_conflict"
    assert f"study {a.study_id}" in b.message and "another patient" in b.message
    assert [i.sha256 for i in study_instances(db_engine, a.study_id)] == [
        study_instances(db_engine, a.study_id)[0].sha256
    ]
    assert len(study_instances(db_engine, a.study_id)) == 1
    files_after = sorted(p for p in settings.data_dir.rglob("*") if p.is_file() and p.suffix in (".dcm", ".png"))
    assert files_after == files_before  # nothing of the refused instance is kept
    rejected = _rejections(db_engine, "patient_conflict")
    assert len(rejected) == 1 and "PAT-B" not in str(rejected[0]) and "PAT-A" not in str(rejected[0])
    # another birth date under the same ID is another patient too; the name's case and
    # empty trailing components are not
    c = ingest_upload(
        db_engine, settings, "c.dcm", _dicom(study_uid, "PA", seed=9, PatientID="PAT-A", PatientBirthDate="19500101")
    )[0]
    d = ingest_upload(
        db_engine,
        settings,
        "d.dcm",
        _dicom(study_uid, "AP", seed=10, PatientID="PAT-A", PatientName="test^synthetic^^"),
    )[0]
    assert c.code == "patient_conflict" and d.status == "accepted" and d.study_id == a.study_id
    with db_engine.connect() as conn:
        identity = conn.execute(select(Study.patient_identity).where(Study.id == a.study_id)).scalar_one()
    assert identity and len(identity) == 64 and "PAT" not in identity


def test_a_late_instance_reopens_an_analysed_study(settings, db_engine):
    from pydicom.uid import generate_uid
    from sqlalchemy import update

    study_uid = generate_uid()
    sid = ingest_upload(db_engine, settings, "a.dcm", _dicom(study_uid, "PA", seed=5))[0].study_id
    with db_engine.begin() as conn:
        conn.execute(update(Study).where(Study.id == sid).values(status="done", lease_owner="w"))
    ingest_upload(db_engine, settings, "b.dcm", _dicom(study_uid, "AP", seed=6))
    with db_engine.connect() as conn:
        status, owner = conn.execute(select(Study.status, Study.lease_owner).where(Study.id == sid)).one()
    assert status == "queued" and owner is None  # analysed again with every image; a running analysis is fenced


def test_a_zip_of_folders_only_gets_a_line_saying_so(settings, db_engine):
    data = _zip({"scans/": b"", "scans/empty/": b""})
    results = ingest_upload(db_engine, settings, "folders.zip", data)
    assert len(results) == 1 and results[0].status == "rejected" and results[0].code == "empty_archive"
    assert "holds no file" in results[0].message


def test_files_no_image_owns_are_removed_at_start_and_recent_ones_kept(settings, db_engine):
    import os
    import time

    from services.ingest import remove_orphans

    kept = ingest_upload(db_engine, settings, "x.png", shared("other", "tb0005.png").read_bytes())[0]
    assert kept.status == "accepted"
    owned = sorted(p for p in settings.data_dir.rglob("*") if p.is_file() and p.parts[-3] in ("originals", "previews"))
    orphan = settings.data_dir / "originals" / "ab" / ("ab" + "0" * 62 + ".dcm")
    fresh = settings.data_dir / "originals" / "cd" / ("cd" + "0" * 62 + ".dcm")
    half = settings.data_dir / "previews" / "ef" / ".tmp-xyz"
    for path in (orphan, fresh, half):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left by a killed process")
    old = time.time() - 3600
    for path in (orphan, half, *owned):
        os.utime(path, (old, old))
    assert remove_orphans(db_engine, settings) == 2
    assert not orphan.exists() and not half.exists() and fresh.exists()
    assert all(p.exists() for p in owned) and len(owned) == 2
