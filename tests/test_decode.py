"""Decoding of real radiographs and of DICOMs written from them with pydicom."""

import numpy as np
import pytest
from PIL import Image

from core import pixel_transforms as px
from core.decode import decode_bytes
from core.dicom_decode import dicom_modality_values, dicom_voi_to_unit, read_dicom
from core.errors import NotARadiograph
from tests.conftest import real_image_files, shared
from tests.dicom_factory import JPEG2000Lossless, JPEGLSLossless, make_dicom


@pytest.mark.parametrize("path", real_image_files(), ids=lambda p: p.name)
def test_every_real_file_decodes(path):
    img = decode_bytes(path.read_bytes())
    assert img.pixels.dtype == np.float32 and img.pixels.ndim == 2
    assert 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0
    assert img.pixels.std() > 0.05, "a radiograph is not a flat image"
    assert img.metadata["format"] in ("png", "jpeg", "dicom")


def test_every_small_nih_file_decodes():
    folder = shared("nih", "small64")
    files = sorted(folder.glob("*.png"))
    assert len(files) > 800
    for f in files:
        img = decode_bytes(f.read_bytes())
        assert img.pixels.shape in ((64, 64), (128, 128))


def test_monochrome1_copy_decodes_to_the_inverse():
    m2 = decode_bytes(shared("dicom", "cr_chest.dcm").read_bytes())
    m1 = decode_bytes(shared("dicom", "cr_chest_monochrome1.dcm").read_bytes())
    assert m1.metadata["photometric"] == "MONOCHROME1"
    np.testing.assert_allclose(m1.pixels, 1.0 - m2.pixels, atol=1e-6)


def test_dicom_metadata_has_no_identifiers():
    meta = decode_bytes(shared("dicom", "cr_chest.dcm").read_bytes()).metadata
    assert meta["modality"] == "CR" and meta["width"] == 1024
    assert not {"patient_name", "patient_id", "PatientName", "PatientID"} & set(meta)


@pytest.fixture(scope="module")
def nih_png():
    return np.asarray(Image.open(shared("nih", "full", "00000001_000.png")).convert("L"))


def _range_unit(values):
    v = values.astype(np.float64)
    return (v - v.min()) / (v.max() - v.min())


def test_12bit_with_rescale_decodes_to_expected(nih_png):
    stored = nih_png.astype(np.uint16) * 16
    data = make_dicom(stored, bits_stored=12, slope=0.5, intercept=-100.0)
    out = decode_bytes(data).pixels
    np.testing.assert_allclose(out, _range_unit(stored * 0.5 - 100.0), atol=1e-5)


def test_16bit_with_rescale_and_voi_window(nih_png):
    stored = nih_png.astype(np.uint16) * 257
    center, width = 20000.0, 30000.0
    data = make_dicom(stored, bits_stored=16, slope=2.0, intercept=-1024.0, window=(center, width))
    out = decode_bytes(data).pixels
    expected = px.window_linear(stored * 2.0 - 1024.0, center, width)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0  # the window really clips


def test_monochrome1_written_with_pydicom_is_inverted(nih_png):
    stored = nih_png.astype(np.uint16) * 16
    m1 = decode_bytes(make_dicom(stored, photometric="MONOCHROME1")).pixels
    np.testing.assert_allclose(m1, 1.0 - _range_unit(stored), atol=1e-5)


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless], ids=["jpeg2000", "jpeg-ls"])
def test_lossless_compressed_dicom_equals_uncompressed(nih_png, syntax):
    stored = nih_png.astype(np.uint16) * 16
    plain = decode_bytes(make_dicom(stored, bits_stored=12)).pixels
    compressed = make_dicom(stored, bits_stored=12, syntax=syntax)
    assert read_dicom(compressed).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_allclose(decode_bytes(compressed).pixels, plain, atol=1e-6)


def test_model_input_ignores_display_window_choice(nih_png):
    from core.display import load_dicom_display, render_window

    data = make_dicom(nih_png.astype(np.uint16) * 16, bits_stored=12, window=(2000.0, 3000.0))
    before = decode_bytes(data).pixels.copy()
    display = load_dicom_display(data)
    narrow = render_window(display, 1000.0, 200.0)
    assert narrow.dtype == np.uint8 and not np.array_equal(narrow, np.round(before * 255))
    np.testing.assert_array_equal(decode_bytes(data).pixels, before)


LOSSLESS_PAIRS = [
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # two lossless encodings of one RGB image
]


@pytest.mark.parametrize("compressed,reference", LOSSLESS_PAIRS)
def test_pydicom_bundled_compressed_files_decode(compressed, reference):
    from pydicom.data import get_testdata_file

    def pipeline(name):
        ds = read_dicom(open(get_testdata_file(name), "rb").read())
        return dicom_voi_to_unit(dicom_modality_values(ds), ds)

    np.testing.assert_allclose(pipeline(compressed), pipeline(reference), atol=1e-6)


@pytest.mark.parametrize(
    "name", ["JPEG2000.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "JPEGLSNearLossless_16.dcm", "693_J2KI.dcm"]
)
def test_pydicom_bundled_lossy_files_decode(name):
    from pydicom.data import get_testdata_file

    ds = read_dicom(open(get_testdata_file(name), "rb").read())
    unit = dicom_voi_to_unit(dicom_modality_values(ds), ds)
    assert unit.ndim == 2 and unit.std() > 0


def test_non_radiograph_modalities_are_refused():
    from pydicom.data import get_testdata_file

    for name in ("CT_small.dcm", "MR_small.dcm"):
        with pytest.raises(NotARadiograph, match="not a plain radiograph"):
            decode_bytes(open(get_testdata_file(name), "rb").read())


def test_undecodable_compressed_pixels_are_a_clean_rejection():
    """pydicom's JPEG-lossy.dcm has a malformed scan header none of the plugins decode."""
    from pydicom.data import get_testdata_file

    from core.errors import UnreadableImage

    ds = read_dicom(open(get_testdata_file("JPEG-lossy.dcm"), "rb").read())
    with pytest.raises(UnreadableImage, match="cannot be decoded"):
        dicom_modality_values(ds)


@pytest.mark.parametrize("mode", ["I;16", "LA", "P", "RGBA", "RGB"])
def test_png_modes_decode_to_the_same_grey(nih_png, mode, tmp_path):
    """8- and 16-bit PNGs in every mode a department sends give the same grey image."""
    import io

    if mode == "I;16":
        img = Image.fromarray(nih_png.astype(np.uint16) * 257)
        expected = nih_png.astype(np.float64) * 257 / 65535
    else:
        img = Image.fromarray(nih_png).convert(mode)
        expected = nih_png.astype(np.float64) / 255
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    decoded = decode_bytes(buf.getvalue())
    assert decoded.metadata["bits_stored"] == (16 if mode == "I;16" else 8)
    np.testing.assert_allclose(decoded.pixels, expected, atol=1.5 / 255)


def test_chest_presets_sit_on_the_image_brightness_and_follow_monochrome1():
    from core.display import ChestPreset, DisplayImage, chest_presets

    rng = np.random.default_rng(0)
    values = rng.integers(0, 4096, size=(600, 500)).astype(np.float64)
    plain = chest_presets(DisplayImage(values, 2048.0, 4096.0, False))
    assert set(plain) == set(ChestPreset)
    centres = [plain[p][0] for p in (ChestPreset.LUNG, ChestPreset.MEDIASTINUM, ChestPreset.BONE)]
    assert centres == sorted(centres)  # lungs dark, bone brightest
    assert plain[ChestPreset.BONE][1] < plain[ChestPreset.LUNG][1]  # bone's window is the narrowest
    lo, hi = np.percentile(values, [1, 70])
    assert plain[ChestPreset.LUNG] == pytest.approx(((lo + hi) / 2, hi - lo), rel=0.02)
    inverted = chest_presets(DisplayImage(values, 2048.0, 4096.0, True))  # MONOCHROME1: high values dark
    assert inverted[ChestPreset.BONE][0] < inverted[ChestPreset.LUNG][0]


@pytest.mark.parametrize("kind", ["twelve_bit", "signed", "unit_float"])
def test_browser_pixels_give_back_the_values_the_viewer_windows(kind):
    from core.display import browser_pixels

    rng = np.random.default_rng(1)
    values = {
        "twelve_bit": rng.integers(0, 4096, size=(64, 48)).astype(np.float64),
        "signed": rng.integers(-1024, 3071, size=(64, 48)).astype(np.float64),
        "unit_float": rng.random((64, 48)),
    }[kind]
    packed = browser_pixels(values)
    assert (packed.rows, packed.cols) == values.shape
    back = packed.values()
    if kind == "unit_float":  # quantised to 65,536 steps of the range
        assert np.abs(back - values).max() <= (values.max() - values.min()) / 65535
    else:
        np.testing.assert_array_equal(back, values)  # integers: exact
    with pytest.raises(ValueError):
        browser_pixels(np.array([[0.0, np.nan]]))


def test_pixel_spacing_of_the_real_cr_dicom():
    import pydicom

    from core.display import load_dicom_display

    path = shared("dicom", "cr_chest.dcm")
    ds = pydicom.dcmread(path)
    expected = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    display = load_dicom_display(path.read_bytes())
    assert display.spacing_mm == pytest.approx(tuple(float(v) for v in expected))


def test_code_string_attributes_with_markup_or_links_read_as_absent():
    """A DICOM code string (ViewPosition, Modality, PatientSex) is upper-case letters,
    digits, space and underscore: a header carrying markup or a link in one is read as
    absent, so it never reaches the database or a screen."""
    import numpy as np

    from core.decode import decode_bytes
    from core.dicom_attributes import code_string
    from tests.dicom_factory import make_dicom

    assert code_string("PA") == "PA" and code_string(" AP ") == "AP" and code_string("LL") == "LL"
    for hostile in ("PA**![b](http://host/vp.png)", "<b>PA</b>", "pa", "A" * 17, "PA\u202e", ""):
        assert code_string(hostile) is None
    pixels = (np.arange(64 * 64).reshape(64, 64) % 4000).astype(np.uint16)
    data = make_dicom(pixels, ViewPosition="PA**![b](http://host/vp.png)")
    assert decode_bytes(data).metadata["view_position"] is None
