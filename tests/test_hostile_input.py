"""Hostile and broken inputs are typed rejections, never crashes (issue 10, items 5-8),
and what an input says is never markup or a formula (items 9-10)."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from core.decode import decode_bytes
from core.dicom_decode import codestream_size
from core.errors import ModelCardMismatch, RejectedInput
from core.export import neutralise_cell, safe_csv
from core.raster_decode import high_bit_depth_scale
from dashboard.text import plain
from tests.conftest import DEFAULT_MODEL, shared
from tests.dicom_factory import make_dicom

BASE = (np.linspace(0, 4000, 64 * 64).reshape(64, 64)).astype(np.uint16)


def _lut(entries, bits, data):
    item = Dataset()
    item.LUTDescriptor = [entries, 0, bits]
    item.add_new(0x00283006, "OW", np.asarray(data, "<u2").tobytes())  # LUT Data
    return Sequence([item])


HOSTILE_DICOMS = {
    "window width 0": dict(window=(2000.0, 0.0)),
    "window width negative": dict(window=(2000.0, -5.0)),
    "window width 0.5": dict(window=(2000.0, 0.5)),
    "window width 0 LINEAR_EXACT": dict(window=(2000.0, 0.0), VOILUTFunction="LINEAR_EXACT"),
    "window width 0 SIGMOID": dict(window=(2000.0, 0.0), VOILUTFunction="SIGMOID"),
    "window NaN": dict(window=(float("nan"), float("nan"))),
    "window function unknown": dict(window=(2000.0, 4000.0), VOILUTFunction="GAMMA"),
    "frames abc": dict(NumberOfFrames="777", _replace=(b"777 ", b"abc ")),
    "pixel spacing single": dict(PixelSpacing=[0.2]),
    "pixel spacing text": dict(PixelSpacing="3.33", _replace=(b"3.33", b"abc ")),
    "rescale slope abc": dict(slope=7.77, intercept=0.0, _replace=(b"7.77", b"abc ")),
    "rescale slope NaN": dict(slope=float("nan"), intercept=0.0),
    "rescale slope 1e308": dict(slope=1e308, intercept=0.0),
    "rescale slope 0": dict(slope=0.0, intercept=3.0),
    "short VOI LUT": dict(VOILUTSequence=_lut(4096, 16, [0, 1, 2])),
    "empty VOI LUT": dict(VOILUTSequence=_lut(4096, 16, [])),
    "64-bit VOI LUT": dict(VOILUTSequence=_lut(4, 64, [0, 1, 2, 3])),
}


def _make(spec: dict) -> bytes:
    """Write the hostile values as they arrive from the wild: pydicom's own validation,
    which would refuse to write them, is switched off while the file is made."""
    from pydicom import config

    saved = config.settings.writing_validation_mode, config.settings.reading_validation_mode
    config.settings.writing_validation_mode = config.settings.reading_validation_mode = config.IGNORE
    spec = dict(spec)
    old, new = spec.pop("_replace", (b"", b""))
    try:
        try:
            data = make_dicom(BASE, **spec)
        except Exception:  # noqa: BLE001 - fall back to adding raw elements
            data = _raw(spec)
        if old:  # values no writer accepts are put in as bytes
            assert data.count(old) == 1, old
            data = data.replace(old, new)
        return data
    finally:
        config.settings.writing_validation_mode, config.settings.reading_validation_mode = saved


def _raw(spec: dict) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(make_dicom(BASE)))
    slope = spec.pop("slope", None)
    if slope is not None:
        spec["RescaleSlope"], spec["RescaleIntercept"] = slope, spec.pop("intercept", 0.0)
    window = spec.pop("window", None)
    if window is not None:
        spec["WindowCenter"], spec["WindowWidth"] = window
    for key, value in spec.items():
        tag = pydicom.datadict.tag_for_keyword(key)
        vr = pydicom.datadict.dictionary_VR(tag)
        ds.add_new(tag, vr, value)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize("name", list(HOSTILE_DICOMS))
def test_hostile_dicom_attributes_are_rejections(name):
    with pytest.raises(RejectedInput):
        decode_bytes(_make(HOSTILE_DICOMS[name]))


def test_modality_lut_without_data_is_a_rejection():
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(make_dicom(BASE)))
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    ds.ModalityLUTSequence = Sequence([item])
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(RejectedInput, match="LUT"):
        decode_bytes(buf.getvalue())


def test_absurd_patient_age_is_dropped_not_a_crash():
    decoded = decode_bytes(make_dicom(BASE, PatientAge="9" * 40 + "Y"))
    assert decoded.metadata["patient_age"] is None


def test_unknown_vr_bytes_are_a_rejection():
    data = bytearray(make_dicom(BASE))
    at = data.find(b"CS", 200)  # an explicit-VR field after the meta header
    data[at : at + 2] = b"\x00\x01"
    with pytest.raises(RejectedInput):
        decode_bytes(bytes(data))


def test_forged_jpeg_frame_size_is_refused_before_decoding():
    import pydicom
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(shared("dicom", "cr_chest.dcm"))
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    frame = bytearray(next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)))
    assert codestream_size(bytes(frame[:4096])) == (ds.Rows, ds.Columns)
    sof = frame.find(b"\xff\xc0")
    frame[sof + 5 : sof + 9] = (30000).to_bytes(2, "big") * 2  # the frame now claims 30000x30000
    ds.PixelData = pydicom.encaps.encapsulate([bytes(frame)])
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(RejectedInput, match="30000x30000"):
        decode_bytes(buf.getvalue())


def test_16bit_png_with_12bit_values_uses_its_real_depth(tmp_path):
    nih = np.asarray(Image.open(shared("nih", "full", "00000001_000.png")).convert("L"), dtype=np.uint16)
    twelve = (nih.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(twelve).save(buf, format="PNG")
    decoded = decode_bytes(buf.getvalue())
    eight = decode_bytes(shared("nih", "full", "00000001_000.png").read_bytes())
    np.testing.assert_allclose(decoded.pixels, eight.pixels, atol=1 / 255)
    assert high_bit_depth_scale(np.array([4095]), None) == 4095
    assert high_bit_depth_scale(np.array([100]), 10) == 1023  # an sBIT chunk wins


def test_truncated_encapsulated_dicom_is_refused():
    data = shared("dicom", "cr_chest.dcm").read_bytes()
    with pytest.raises(RejectedInput):
        decode_bytes(data[: len(data) - 2000])


def test_constant_image_is_refused():
    with pytest.raises(RejectedInput, match="same value"):
        decode_bytes(make_dicom(np.full((64, 64), 700, np.uint16)))


def test_truncated_model_card_is_a_mismatch(tmp_path):
    from core.model_card import ModelCard

    folder = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL, folder)
    text = (folder / "model_card.json").read_text()
    (folder / "model_card.json").write_text(text[: len(text) // 2])
    with pytest.raises(ModelCardMismatch, match="not valid JSON"):
        ModelCard.load(folder)


# ---------------------------------------------------------------- items 9 and 10
PAYLOADS = [
    "![vp](http://127.0.0.1:8789/vp.png)",
    "[Session expired: sign in again](http://127.0.0.1:8789/)",
    "[click me](http://x).png",
    "**bold** _it_ `code` <b>html</b>",
    "evil\u202egpj.exe",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_user_strings_render_as_text(payload):
    from markdown_it import MarkdownIt

    html = MarkdownIt().render(plain(payload))
    assert "<a " not in html and "<img" not in html and "<strong>" not in html and "<code>" not in html
    assert "\u202e" not in plain(payload)


def test_upload_results_show_names_as_text():
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from dashboard.widgets import upload_results

        st.session_state.setdefault(
            "rows",
            [
                {
                    "file": "[click me](http://x).png",
                    "result": "rejected",
                    "study": None,
                    "message": "![b](http://127.0.0.1:8789/b.png)",
                }
            ],
        )
        upload_results(st.session_state["rows"])

    at = AppTest.from_function(page).run()
    shown = at.error[0].value
    assert "\\[click me\\]" in shown and "\\!\\[b\\]" in shown


def test_csv_exports_neutralise_formulas():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "name": ['=HYPERLINK("http://x","open report").png', "+1", "-2", "@cmd", "\tx", "ok"],
            "n": [1, -2, 3, 4, 5, 6],
        }
    )
    text = safe_csv(frame)
    assert "'=HYPERLINK" in text and "'+1" in text and "'-2" in text and "'@cmd" in text
    assert ",-2\n" in text  # numbers stay numbers
    assert neutralise_cell("plain") == "plain"


def test_audit_export_neutralises_formulas_and_writes_json_details():
    from datetime import datetime

    from db.audit import AuditRow
    from services.exports import audit_csv

    rows = [
        AuditRow(
            1, datetime(2026, 11, 26), '=HYPERLINK("http://x")', "upload", 3, {"name": "+cmd.png", "format": "png"}
        )
    ]
    text = audit_csv(rows)
    assert "'=HYPERLINK" in text
    detail = text.splitlines()[1].split(",", 5)[5]
    assert detail.startswith('"{') and '""name"": ""+cmd.png""' in detail  # JSON text, quoted once


def test_card_json_is_strict():
    """The default model's card is valid JSON (no NaN) after training wrote it."""
    json.loads((DEFAULT_MODEL / "model_card.json").read_text(), parse_constant=lambda c: pytest.fail(c))


@pytest.mark.parametrize("rel", ["other/16747_3_1.jpg", "dicom/cr_chest.dcm"])
def test_bit_flipped_jpeg_data_is_refused_when_libjpeg_notices(rel):
    """libjpeg reports corrupt entropy-coded data on stderr and returns a partial image;
    those reports are now rejections. Flips it cannot notice (JPEG has no checksum) still
    decode, so the test asks for a good share of rejections and no other outcome."""
    import random

    data = shared(*rel.split("/")).read_bytes()
    rng = random.Random(7)
    outcomes = []
    for _ in range(40):
        b = bytearray(data)
        for _ in range(2):
            pos = rng.randrange(len(b) // 3, len(b) - 2)
            b[pos] ^= 1 << rng.randrange(8)
        try:
            decode_bytes(bytes(b))
            outcomes.append("decoded")
        except RejectedInput as exc:
            outcomes.append("corrupt" if "corrupt or incomplete" in str(exc) else "other rejection")
    assert outcomes.count("corrupt") >= 10, outcomes
