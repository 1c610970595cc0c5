"""DICOM decoding into grey [0, 1] as PS3.3 C.11 and C.7.6.3 order it: the header checked
before any pixel is decompressed, then the Modality LUT, then the VOI LUT or window, then
MONOCHROME1 inverted. Only single-frame projection radiographs of the chest are accepted."""

from __future__ import annotations

import io
import warnings

import numpy as np

from core import pixel_transforms as px
from core.codec_errors import check_jpeg_data, native_messages, refuse_if_corrupt
from core.decoded_image import DecodedImage, Limits, check_shape
from core.dicom_attributes import (
    code_string,
    dicom_age,
    dicom_default_window,
    dicom_identity,
    finite_numbers,
    int_attribute,
    patient_fields,
    pixel_spacing,
)
from core.errors import NoPixelData, NotARadiograph, RejectedInput, UnreadableImage

# Plain projection radiography; CT, MR, US, NM, PT, MG and the rest are refused.
RADIOGRAPH_MODALITIES = {"CR", "DX", "RG", "DR", "OT"}
NON_CHEST_BODY_PARTS = {
    "HEAD",
    "SKULL",
    "BRAIN",
    "HAND",
    "WRIST",
    "FOOT",
    "ANKLE",
    "KNEE",
    "HIP",
    "PELVIS",
    "ELBOW",
    "SHOULDER",
    "LEG",
    "ARM",
    "FINGER",
    "TOE",
    "BREAST",
    "CSPINE",
    "LSPINE",
    "ABDOMEN",
    "EXTREMITY",
    "JAW",
    "TMJ",
    "FEMUR",
    "TIBIA",
    "HUMERUS",
    "FOREARM",
}
CHEST_BODY_PARTS = {"CHEST", "THORAX", "LUNG", "RIBS", "TSPINE", ""}


# GDCM answers some corrupt JPEG frames by throwing a C++ exception that nothing catches:
# std::terminate aborts the whole process (the app and its embedded worker), found by the
# mutation fuzzer (tests/test_fuzz.py). pylibjpeg (libjpeg, OpenJPEG), pyjpegls (CharLS)
# and pydicom's own RLE decoder cover every transfer syntax accepted here and fail with
# Python exceptions, so GDCM is never asked to decode pixels.
UNSAFE_DECODER_PLUGINS = ("gdcm",)


def _drop_unsafe_decoders() -> None:
    from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS

    for decoder, _ in _PIXEL_DATA_DECODERS.values():
        for label in UNSAFE_DECODER_PLUGINS:
            if label in getattr(decoder, "_available", {}) or label in getattr(decoder, "_unavailable", {}):
                decoder.remove_plugin(label)


def read_dicom(data: bytes):
    """Parse a DICOM file with pydicom; a non-DICOM or broken header is a rejection."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    _drop_unsafe_decoders()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(io.BytesIO(data))
        for w in caught:
            text = str(w.message)
            if any(k in text for k in ("delimiter", "End of file", "truncated", "Expected explicit VR")):
                raise UnreadableImage(f"The DICOM file is corrupt or incomplete ({text[:200]}).")
        return ds
    except RejectedInput:
        raise
    except InvalidDicomError as exc:
        raise UnreadableImage(f"Not a valid DICOM file ({exc}).") from exc
    except Exception as exc:  # pydicom raises many types on a damaged header
        raise UnreadableImage(f"The DICOM header is corrupt ({type(exc).__name__}: {exc}).") from exc


def check_dicom_header(ds, limits: Limits) -> None:
    """Refuse from the header alone: no pixels, wrong modality, multi-frame, wrong size."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if "Rows" in ds or "Columns" in ds:
            raise UnreadableImage(
                "The DICOM file describes an image but its Pixel Data is missing: the file is truncated or corrupt."
            )
        raise NoPixelData("This DICOM object has no image (no Pixel Data): e.g. a report or structured document.")
    modality = str(ds.get("Modality", "") or "").upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        raise NotARadiograph(
            f"Modality {modality} is not a plain radiograph; only CR/DX chest radiographs are accepted."
        )
    body = str(ds.get("BodyPartExamined", "") or "").upper().replace(" ", "")
    if body in NON_CHEST_BODY_PARTS:
        raise NotARadiograph(f"Body part {body} is not a chest radiograph.")
    frames = int_attribute(ds, "NumberOfFrames", 1)
    if frames > 1:
        raise NotARadiograph(f"Multi-frame DICOM ({frames} frames) is not a single radiograph.")
    rows, cols = int_attribute(ds, "Rows", 0), int_attribute(ds, "Columns", 0)
    if rows <= 0 or cols <= 0:
        raise UnreadableImage("The DICOM header gives no image size (Rows/Columns).")
    check_shape(rows, cols, limits)
    validate_dicom_attributes(ds)
    check_encapsulated_frame_size(ds, rows, cols)


def validate_dicom_attributes(ds) -> None:
    """Check every attribute the pixel pipeline reads before it reads it (PS3.3 C.11)."""
    slope = finite_numbers(ds, "RescaleSlope")
    finite_numbers(ds, "RescaleIntercept")
    if slope is not None and slope[0] == 0:
        raise UnreadableImage("The DICOM RescaleSlope is 0: every pixel would have the same value.")
    widths = finite_numbers(ds, "WindowWidth")
    centers = finite_numbers(ds, "WindowCenter")
    if widths is not None and min(widths) < 1:
        raise UnreadableImage(f"The DICOM WindowWidth {widths[0]:g} is invalid (it must be at least 1).")
    if (widths is None) != (centers is None):
        raise UnreadableImage("The DICOM window is incomplete (WindowCenter and WindowWidth go together).")
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = finite_numbers(ds, keyword)
        if spacing is not None and (len(spacing) != 2 or min(spacing) <= 0):
            raise UnreadableImage(f"The DICOM {keyword} must be two positive numbers.")
    for keyword in ("ModalityLUTSequence", "VOILUTSequence"):
        seq = ds.get(keyword)
        if seq:
            _validate_lut(seq[0], keyword)


def _validate_lut(item, keyword: str) -> None:
    """A LUT's descriptor (entries, first value, bits) must match its data (PS3.3 C.11.1.1)."""
    descriptor = item.get("LUTDescriptor")
    data = item.get("LUTData")
    if descriptor is None or data is None or len(descriptor) != 3:
        raise UnreadableImage(f"The DICOM {keyword} has no valid LUT descriptor and data.")
    entries, bits = int(descriptor[0]) or 65536, int(descriptor[2])
    if bits not in range(8, 17):
        raise UnreadableImage(f"The DICOM {keyword} declares {bits}-bit entries (8 to 16 are allowed).")
    count = len(data) if isinstance(data, (list, tuple)) or type(data).__name__ == "MultiValue" else None
    if count is None:
        raw = item["LUTData"].value
        count = len(raw) // 2 if isinstance(raw, (bytes, bytearray)) else 1
    if count != entries:
        raise UnreadableImage(f"The DICOM {keyword} has {count} entries where its descriptor says {entries}.")


def check_encapsulated_frame_size(ds, rows: int, cols: int) -> None:
    """Read the size a compressed frame declares in its own codestream header (JPEG SOF,
    JPEG-LS SOF55, JPEG 2000 SIZ) and refuse one that differs from Rows/Columns, before
    any decompression: a 1 KB file must not make the decoder allocate gigabytes."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or not getattr(syntax, "is_compressed", False) or "PixelData" not in ds:
        return
    from pydicom.encaps import generate_frames

    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as exc:  # noqa: BLE001
        raise UnreadableImage("The DICOM compressed pixel data is corrupt (no readable frame).") from exc
    size = codestream_size(frame[:65536])
    if size is not None and size != (rows, cols):
        raise UnreadableImage(
            f"The compressed frame declares {size[1]}x{size[0]} pixels but the DICOM header says "
            f"{cols}x{rows}: the file is corrupt or forged."
        )
    if str(syntax) == "1.2.840.10008.1.2.4.50":  # JPEG Baseline: the frame is a plain JPEG stream
        check_jpeg_data(bytes(frame))


def codestream_size(head: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a JPEG / JPEG-LS SOF or a JPEG 2000 SIZ marker; None if not found."""
    import struct

    if head[:2] == b"\xff\xd8":  # JPEG family: walk the markers up to the first SOF
        pos = 2
        while pos + 4 <= len(head):
            if head[pos] != 0xFF:
                return None
            marker = head[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7):
                if pos + 9 > len(head):
                    return None
                rows, cols = struct.unpack(">HH", head[pos + 5 : pos + 9])
                return rows, cols
            pos += 2 + length
        return None
    at = head.find(b"\xff\x51")  # JPEG 2000 SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz
    if head[:4] in (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0c") and at >= 0 and at + 22 <= len(head):
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", head[at + 6 : at + 22])
        return ysiz - yo, xsiz - xo
    return None


def dicom_modality_values(ds) -> np.ndarray:
    """Stored pixels through the Modality LUT (rescale slope/intercept or LUT sequence)."""
    from pydicom.pixels import apply_modality_lut

    try:
        with warnings.catch_warnings():
            # a missing delimiter or short frame is reported as a warning: refuse, never
            # show a partial image as if it were complete
            warnings.simplefilter("error", UserWarning)
            with native_messages() as messages:
                arr = ds.pixel_array
            refuse_if_corrupt(messages)
    except RejectedInput:
        raise
    except UserWarning as exc:
        raise UnreadableImage(f"The image data is corrupt or incomplete ({exc}).") from exc
    except Exception as exc:
        raise UnreadableImage(f"The DICOM pixel data cannot be decoded ({type(exc).__name__}: {exc}).") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return arr
    if arr.ndim != 2:
        raise NotARadiograph(f"Unexpected DICOM pixel array shape {arr.shape}.")
    return np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)


def dicom_voi_to_unit(values: np.ndarray, ds) -> np.ndarray:
    """VOI LUT sequence if present, else the first window, else the full range; to [0, 1]."""
    voi_seq = ds.get("VOILUTSequence")
    if voi_seq:
        from pydicom.pixels import apply_voi

        item = voi_seq[0]
        out = apply_voi(values, ds, index=0)
        lut_bits = int(item.LUTDescriptor[2])
        return px.rescale_to_unit(out, 0, 2**lut_bits - 1)
    center, width = dicom_default_window(ds)
    if center is not None and width is not None:
        try:
            function = px.WindowFunction.named(str(ds.get("VOILUTFunction", "") or ""))
        except ValueError as exc:
            raise UnreadableImage(f"The DICOM header names a window this software does not know ({exc}).") from exc
        return px.apply_window(values, center, width, function)
    return px.rescale_to_unit(values)


def decode_dicom(data: bytes, limits: Limits) -> DecodedImage:
    ds = read_dicom(data)
    check_dicom_header(ds, limits)
    values = dicom_modality_values(ds)
    unit = dicom_voi_to_unit(values, ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":
        unit = px.invert_unit(unit)
    spacing = pixel_spacing(ds)
    meta = {
        "format": "dicom",
        "modality": code_string(ds.get("Modality")),
        "view_position": code_string(ds.get("ViewPosition")),
        "width": int(ds.Columns),
        "height": int(ds.Rows),
        "pixel_spacing": list(spacing) if spacing else None,
        "photometric": photometric,
        "bits_stored": int(ds.get("BitsStored", 0) or 0) or None,
        "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else None,
        "patient_age": dicom_age(ds.get("PatientAge")),
        "patient_sex": code_string(ds.get("PatientSex")),
        **dicom_identity(ds),
        "patient_fields": patient_fields(ds),
    }
    return DecodedImage(pixels=np.ascontiguousarray(unit, dtype=np.float32), metadata=meta)
