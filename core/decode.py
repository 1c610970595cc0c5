"""Decode an uploaded file (PNG, JPEG or DICOM) into one grey image in [0, 1].

The result is what the model sees. Display windowing for reviewers is separate
(:mod:`core.display`) so a reviewer's window/level never changes the model input.
Every failure is a :class:`core.errors.RejectedInput` with a message for the user.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from core import pixel_transforms as px
from core.errors import (
    ImageTooLarge,
    ImageTooSmall,
    NoPixelData,
    NotARadiograph,
    RejectedInput,
    UnreadableImage,
    UnsupportedFormat,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
ZIP_MAGIC = b"PK\x03\x04"
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
MAX_ASPECT_RATIO = 2.5


@dataclass(frozen=True)
class Limits:
    """Size limits checked from headers, before any pixel is decompressed."""

    max_pixels: int = 50_000_000
    min_side: int = 32


@dataclass
class DecodedImage:
    """Model-ready grey pixels plus non-identifying metadata."""

    pixels: np.ndarray  # float32, HxW, [0, 1], white = dense (bone)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def sniff_format(data: bytes) -> str:
    """Tell the container from its magic bytes, never from a user-supplied name."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(ZIP_MAGIC):
        return "zip"
    return "unknown"


def decode_bytes(data: bytes, limits: Limits | None = None) -> DecodedImage:
    """Decode one file's bytes; raise a RejectedInput subclass when it cannot be used.

    This is the one door every input passes: whatever pydicom, Pillow or NumPy raise on a
    hostile file becomes a rejection with a message, never an exception that stops a
    batch; and the pixels that leave it are finite and not all one value.
    """
    limits = limits or Limits()
    if not data:
        raise UnreadableImage("The file is empty.")
    kind = sniff_format(data)
    if kind == "zip":
        raise UnsupportedFormat("This is a zip archive: upload it as an archive, not as one image.")
    if kind == "unknown":
        raise UnsupportedFormat("Not a PNG, JPEG or DICOM file (the content was not recognised).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow is caught below as non-finite
            image = _decode_raster(data, kind, limits) if kind in ("png", "jpeg") else _decode_dicom(data, limits)
    except RejectedInput:
        raise
    except MemoryError as exc:
        raise ImageTooLarge("The image needs more memory to decode than is available.") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure on an input is a rejection
        raise UnreadableImage(f"The image data is corrupt or cannot be read ({type(exc).__name__}).") from exc
    _check_shape(image.height, image.width, limits)
    check_pixels(image.pixels)
    return image


def check_pixels(pixels: np.ndarray) -> None:
    """Refuse what the model must never see: NaN/Inf, or an image of one value."""
    if not np.isfinite(pixels).all():
        raise UnreadableImage(
            "The image holds non-finite pixel values (NaN or infinity): it is corrupt or its "
            "rescale/window attributes are invalid."
        )
    if pixels.size and float(pixels.max()) - float(pixels.min()) <= 0.0:
        raise UnreadableImage("Every pixel of the image has the same value: there is no image to read.")


def _check_shape(height: int, width: int, limits: Limits) -> None:
    if height * width > limits.max_pixels:
        raise ImageTooLarge(f"Image is {width}x{height} pixels, above the limit of {limits.max_pixels:,} pixels.")
    if min(height, width) < limits.min_side:
        raise ImageTooSmall(f"Image is {width}x{height} pixels; at least {limits.min_side} pixels a side are needed.")
    if max(height, width) / max(1, min(height, width)) > MAX_ASPECT_RATIO:
        raise NotARadiograph(f"Image is {width}x{height}: too elongated to be a chest radiograph.")


# --------------------------------------------------------------------------- PNG / JPEG


def check_png_chunks(data: bytes) -> None:
    """Verify every PNG chunk's CRC: a flipped bit in image data is refused, not shown."""
    import struct
    import zlib

    pos = len(PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            raise UnreadableImage("The PNG file is truncated or corrupt (a chunk runs past the end of the file).")
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(data[pos + 4 : end]) & 0xFFFFFFFF != crc:
            name = kind.decode("latin-1") if kind.isalpha() else repr(kind)
            raise UnreadableImage(f"The PNG file is truncated or corrupt (chunk {name} fails its checksum).")
        if kind == b"IEND":
            return
        pos = end + 4


# What the native decoders print (on file descriptor 2, not as Python warnings) when they
# meet corrupt data and carry on with a partial image: libjpeg-turbo, libjpeg, OpenJPEG.
CORRUPTION_PHRASES = (
    "Corrupt JPEG data",
    "Premature end of JPEG",
    "premature end of data segment",
    "Bogus",
    "Invalid JPEG",
    "Tile part length size inconsistent",
    "Stream too short",
    "Expected a SOC marker",
    "Marker is not compliant",
)
_STDERR_LOCK = threading.Lock()


@contextmanager
def native_messages() -> Iterator[list[str]]:
    """Collect what native code writes to stderr (fd 2) inside the block.

    libjpeg reports "Corrupt JPEG data" as a warning on stderr and returns a partial
    image; Python never sees it. One block at a time (a lock), and whatever was captured
    is written back to the real stderr afterwards, so no other message is lost."""
    out: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            if text:
                out.append(text)
                os.write(2, text.encode("utf-8", "replace"))


def refuse_if_corrupt(messages: list[str]) -> None:
    text = "".join(messages)
    for phrase in CORRUPTION_PHRASES:
        if phrase in text:
            line = next(ln for ln in text.splitlines() if phrase in ln)
            raise UnreadableImage(f"The image data is corrupt or incomplete ({line.strip()[:160]}).")


def check_jpeg_data(data: bytes) -> None:
    """Decode once with OpenCV's libjpeg-turbo, which reports corrupt entropy-coded data
    (Pillow's build stays silent), and refuse the file if it complains."""
    import cv2

    with native_messages() as messages:
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    refuse_if_corrupt(messages)


def _decode_raster(data: bytes, kind: str, limits: Limits) -> DecodedImage:
    if kind == "png":
        check_png_chunks(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            # Checked before load(): a forged header must not make us allocate.
            _check_shape(height, width, limits)
            if kind == "jpeg":
                check_jpeg_data(data)
            img.load()
    except RejectedInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(
            f"Image header claims more pixels than can be decoded safely, above the limit of "
            f"{limits.max_pixels:,} pixels (a decompression bomb?)."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImage(f"The {kind.upper()} file is truncated or corrupt ({exc}).") from exc
    mode = img.mode
    pixels = _raster_to_unit(img, _png_significant_bits(data) if kind == "png" else None)
    meta = {
        "format": kind,
        "modality": None,
        "view_position": None,
        "width": width,
        "height": height,
        "pixel_spacing": None,
        "photometric": "MONOCHROME2" if mode in ("L", "LA", "I;16", "I", "1") else mode,
        "bits_stored": 16 if mode in ("I;16", "I") else 8,
        "source_mode": mode,
        "patient_age": None,
        "patient_sex": None,
    }
    return DecodedImage(pixels=pixels, metadata=meta)


def _png_significant_bits(data: bytes) -> int | None:
    """The grey sample depth an sBIT chunk declares (PNG 11.3.3.4), if there is one."""
    import struct

    pos = len(PNG_MAGIC)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"sBIT" and length >= 1:
            return int(data[pos + 8])
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def high_bit_depth_scale(arr: np.ndarray, significant_bits: int | None) -> float:
    """The full-scale value of a 16-bit grey PNG: 2^sBIT - 1 where the file says how many
    bits are significant; otherwise 2^n - 1 for the bit length n of the observed maximum
    (at least 8). A 12-bit image stored in 16-bit samples is thus divided by 4095, not
    65535, which would leave it almost black."""
    if significant_bits and 1 <= significant_bits <= 16:
        return float(2**significant_bits - 1)
    top = int(arr.max(initial=0))
    return float(2 ** max(8, top.bit_length()) - 1)


def _raster_to_unit(img: Image.Image, significant_bits: int | None = None) -> np.ndarray:
    """Grey [0, 1] from any PNG/JPEG mode; alpha is dropped, colour is luminance."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(arr / high_bit_depth_scale(arr, significant_bits), 0.0, 1.0).astype(np.float32)
    if mode == "F":
        return px.rescale_to_unit(np.asarray(img))
    if mode == "P":
        img = img.convert("RGBA")
    if mode in ("LA", "RGBA", "PA"):
        img = img.convert("RGB") if mode != "LA" else img.getchannel(0)
    if img.mode != "L":
        img = img.convert("L")
    return (np.asarray(img, dtype=np.float32) / 255.0).astype(np.float32)


# --------------------------------------------------------------------------- DICOM

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
    frames = _int_attribute(ds, "NumberOfFrames", 1)
    if frames > 1:
        raise NotARadiograph(f"Multi-frame DICOM ({frames} frames) is not a single radiograph.")
    rows, cols = _int_attribute(ds, "Rows", 0), _int_attribute(ds, "Columns", 0)
    if rows <= 0 or cols <= 0:
        raise UnreadableImage("The DICOM header gives no image size (Rows/Columns).")
    _check_shape(rows, cols, limits)
    validate_dicom_attributes(ds)
    check_encapsulated_frame_size(ds, rows, cols)


def _int_attribute(ds, keyword: str, default: int) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError) as exc:
        raise UnreadableImage(f"The DICOM attribute {keyword} is not a whole number.") from exc


def _finite_numbers(ds, keyword: str) -> list[float] | None:
    """The attribute's values as finite floats; None when absent; a rejection when malformed."""
    if keyword not in ds or ds[keyword].value in (None, ""):
        return None
    value = ds[keyword].value
    items = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise UnreadableImage(f"The DICOM attribute {keyword} is not numeric.") from exc
    if not numbers or not all(np.isfinite(numbers)) or max(abs(n) for n in numbers) > 1e12:
        raise UnreadableImage(f"The DICOM attribute {keyword} holds an invalid value.")
    return numbers


def validate_dicom_attributes(ds) -> None:
    """Check every attribute the pixel pipeline reads before it reads it (PS3.3 C.11)."""
    slope = _finite_numbers(ds, "RescaleSlope")
    _finite_numbers(ds, "RescaleIntercept")
    if slope is not None and slope[0] == 0:
        raise UnreadableImage("The DICOM RescaleSlope is 0: every pixel would have the same value.")
    widths = _finite_numbers(ds, "WindowWidth")
    centers = _finite_numbers(ds, "WindowCenter")
    if widths is not None and min(widths) < 1:
        raise UnreadableImage(f"The DICOM WindowWidth {widths[0]:g} is invalid (it must be at least 1).")
    if (widths is None) != (centers is None):
        raise UnreadableImage("The DICOM window is incomplete (WindowCenter and WindowWidth go together).")
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = _finite_numbers(ds, keyword)
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


def dicom_default_window(ds) -> tuple[float | None, float | None]:
    """First Window Center/Width pair (the attributes may be multi-valued)."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None, None

    def first(v):
        try:
            return float(v[0]) if hasattr(v, "__len__") and not isinstance(v, (str, bytes)) else float(v)
        except (TypeError, ValueError, IndexError):
            return None

    return first(center), first(width)


def _decode_dicom(data: bytes, limits: Limits) -> DecodedImage:
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
        "patient_age": _dicom_age(ds.get("PatientAge")),
        "patient_sex": code_string(ds.get("PatientSex")),
        **dicom_identity(ds),
        "patient_fields": patient_fields(ds),
    }
    return DecodedImage(pixels=np.ascontiguousarray(unit, dtype=np.float32), metadata=meta)


def pixel_spacing(ds) -> tuple[float, float] | None:
    """Millimetres between pixel centres (row, column): PixelSpacing where the file has it
    (calibrated at the patient), else ImagerPixelSpacing (at the detector: a projection
    radiograph's measurement is then magnified by the beam's divergence, a few percent)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = _finite_numbers(ds, keyword)
        if spacing is not None and len(spacing) == 2 and min(spacing) > 0:
            return float(spacing[0]), float(spacing[1])
    return None


def dicom_identity(ds) -> dict[str, str | None]:
    """The identifiers that place an instance in its study and series, and what the
    worklist shows (accession number, study date), each checked and bounded: a malformed
    UID reads as absent (the image becomes a study of its own), never as text to trust."""
    from pydicom.uid import UID

    def uid(keyword: str) -> str | None:
        value = str(ds.get(keyword, "") or "").strip()
        return value if value and len(value) <= 64 and UID(value).is_valid else None

    def text(keyword: str, size: int) -> str | None:
        value = "".join(ch for ch in str(ds.get(keyword, "") or "") if ch.isprintable()).strip()
        return value[:size] or None

    date = str(ds.get("StudyDate", "") or "").strip()
    codes = ds.get("ViewCodeSequence") or []
    meaning = str(codes[0].get("CodeMeaning", "") or "")[:64] if len(codes) else ""
    return {
        "study_instance_uid": uid("StudyInstanceUID"),
        "series_instance_uid": uid("SeriesInstanceUID"),
        "sop_instance_uid": uid("SOPInstanceUID"),
        "sop_class_uid": uid("SOPClassUID"),
        "accession_number": text("AccessionNumber", 16),
        "study_date": date if len(date) == 8 and date.isdigit() else None,
        "view_code_meaning": meaning or None,
    }


CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")


def code_string(value: Any) -> str | None:
    """A DICOM code string (CS: upper-case letters, digits, space and underscore, at most
    16 characters) or None: anything else in a CS attribute is a malformed or hostile
    header, read as absent rather than carried into the database and onto a screen."""
    text = str(value or "").strip()
    return text if CODE_STRING.fullmatch(text) else None


def patient_fields(ds) -> str:
    """The patient's identity as one normalised string (ID, issuer, name, birth date), to
    be digested under the site key by the caller and compared, never stored or shown as
    it is. Case, surrounding spaces and empty trailing name components do not count as a
    difference; any other difference, an absent field against a present one included, does."""

    def text(keyword: str) -> str:
        value = "".join(ch for ch in str(ds.get(keyword, "") or "") if ch.isprintable())
        return value.strip().upper()[:128]

    name = "^".join(part.strip() for part in text("PatientName").split("^")).rstrip("^= ")
    return "\x1f".join([text("PatientID"), text("IssuerOfPatientID"), name, text("PatientBirthDate")])


def _dicom_age(value: Any) -> int | None:
    """'057Y' -> 57; months/weeks/days become 0 years. Age is kept, identity is not."""
    if not value:
        return None
    text = str(value).strip().upper()
    if len(text) > 4:  # the AS value representation is exactly four characters, e.g. 057Y
        return None
    try:
        number = int(text[:-1]) if text[-1] in "YMWD" else int(text)
    except ValueError:
        return None
    if not 0 <= number <= 150:
        return None
    return number if text.endswith("Y") or text[-1].isdigit() else 0
