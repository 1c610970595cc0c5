"""Grad-CAM maps are stored at the feature map's resolution and upsampled where shown."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core import storage
from core.gradcam import upsample

LABELS = ["Mass", "Nodule", "No Finding"]


def _cams() -> np.ndarray:
    return np.random.default_rng(3).uniform(0, 1, (len(LABELS), 7, 7)).astype(np.float32)


def test_maps_are_written_small_once_per_study(tmp_path):
    cams = _cams()
    rel = storage.write_heatmaps(tmp_path, 12, "abc123", LABELS, cams, [5, 6, 5])
    assert rel == storage.cams_relpath(12, "abc123")
    assert [p.name for p in (tmp_path / "heatmaps").rglob("*") if p.is_file()] == ["cams.npz"]
    stored, labels = storage.load_cams(tmp_path, 12, "abc123")
    assert labels == LABELS and stored.shape == (3, 7, 7)
    assert np.abs(stored - cams).max() < 1e-3  # float16
    assert storage.cam_sources(tmp_path, 12, "abc123") == {"Mass": 5, "Nodule": 6, "No Finding": 5}


def test_a_stored_map_read_at_an_image_size_is_the_small_map_upsampled(tmp_path):
    cams = _cams()
    rel = storage.write_heatmaps(tmp_path, 1, "v1", LABELS, cams)
    got = storage.read_heatmap(tmp_path, rel, "Nodule", 300, 200)
    assert got.shape == (200, 300)
    np.testing.assert_array_equal(got, upsample(cams[1].astype(np.float16).astype(np.float32), 300, 200))
    assert 0.0 <= got.min() and got.max() <= 1.0


def test_a_full_size_png_written_before_small_maps_still_reads(tmp_path):
    heat = np.linspace(0, 255, 40 * 30).reshape(30, 40).astype(np.uint8)
    path = tmp_path / "heatmaps" / "4" / "v0" / "Mass.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(heat).save(path)
    got = storage.read_heatmap(tmp_path, "heatmaps/4/v0/Mass.png", "Mass", 40, 30)
    np.testing.assert_allclose(got, heat / 255.0, atol=1e-6)
    assert storage.read_heatmap(tmp_path, "heatmaps/4/v0/Mass.png", "Mass", 80, 60).shape == (60, 80)


def test_a_label_without_a_map_and_a_path_outside_the_data_folder_are_refused(tmp_path):
    rel = storage.write_heatmaps(tmp_path, 1, "v1", LABELS, _cams())
    with pytest.raises(KeyError):
        storage.read_heatmap(tmp_path, rel, "Hernia", 10, 10)
    with pytest.raises(ValueError):
        storage.read_heatmap(tmp_path, "../outside.npz", "Mass", 10, 10)


def test_an_overlay_is_drawn_on_the_preview_ingest_stored_equal_to_a_fresh_decode(settings, db_engine):
    """The PACS path reads the 8-bit preview written at ingest instead of decoding the
    DICOM again; it holds the same pixels a decode gives."""
    from core.decode import decode_bytes
    from core.pixel_transforms import to_uint8
    from db.studies import study_instances
    from services.ingest import ingest_upload
    from services.pacs.results import _grey
    from tests.conftest import shared

    data = shared("dicom", "cr_chest.dcm").read_bytes()
    study_id = ingest_upload(db_engine, settings, "cr_chest.dcm", data)[0].study_id
    (record,) = study_instances(db_engine, study_id)
    path = storage.safe_join(settings.data_dir, record.stored_path)
    np.testing.assert_array_equal(_grey(settings, record, path), to_uint8(decode_bytes(data).pixels))
    storage.safe_join(settings.data_dir, storage.preview_relpath(record.sha256)).unlink()  # no preview: decoded
    np.testing.assert_array_equal(_grey(settings, record, path), to_uint8(decode_bytes(data).pixels))
