"""Decode an uploaded file (PNG, JPEG or DICOM) into one grey image in [0, 1].

The result is what the model sees. Display windowing for reviewers is separate
(:mod:`core.display`) so a reviewer's window/level never changes the model input.
Every failure is a :class:`core.errors.RejectedInput` with a message for the user.
"""
from __future__ import annotations

import io
import warnings
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
    "HEAD", "SKULL", "BRAIN", "HAND", "WRIST", "FOOT", "ANKLE", "KNEE", "HIP", "PELVIS",
    "ELBOW", "SHOULDER", "LEG", "ARM", "FINGER", "TOE", "BREAST", "CSPINE", "LSPINE",
    "ABDOMEN", "EXTREMITY", "JAW", "TMJ", "FEMUR", "TIBIA", "HUMERUS", "FOREARM",
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
    """Decode one file's bytes; raise a RejectedInput subclass when it cannot be used."""
    limits = limits or Limits()
    if not data:
        raise UnreadableImage("The file is empty.")
    kind = sniff_format(data)
    if kind in ("png", "jpeg"):
        image = _decode_raster(data, kind, limits)
    elif kind == "dicom":
        image = _decode_dicom(data, limits)
    elif kind == "zip":
        raise UnsupportedFormat("This is a zip archive: upload it as an archive, not as one image.")
    else:
        raise UnsupportedFormat("Not a PNG, JPEG or DICOM file (the content was not recognised).")
    _check_shape(image.height, image.width, limits)
    return image


def _check_shape(height: int, width: int, limits: Limits) -> None:
    if height * width > limits.max_pixels:
        raise ImageTooLarge(
            f"Image is {width}x{height} pixels, above the limit of {limits.max_pixels:,} pixels."
        )
    if min(height, width) < limits.min_side:
        raise ImageTooSmall(
            f"Image is {width}x{height} pixels; at least {limits.min_side} pixels a side are needed."
        )
    if max(height, width) / max(1, min(height, width)) > MAX_ASPECT_RATIO:
        raise NotARadiograph(
            f"Image is {width}x{height}: too elongated to be a chest radiograph."
        )


# --------------------------------------------------------------------------- PNG / JPEG

def check_png_chunks(data: bytes) -> None:
    """Verify every PNG chunk's CRC: a flipped bit in image data is refused, not shown."""
    import struct
    import zlib

    pos = len(PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            raise UnreadableImage("The PNG file is truncated or corrupt (a chunk runs past the end of the file).")
        (crc,) = struct.unpack(">I", data[end:end + 4])
        if zlib.crc32(data[pos + 4:end]) & 0xFFFFFFFF != crc:
            name = kind.decode("latin-1") if kind.isalpha() else repr(kind)
            raise UnreadableImage(f"The PNG file is truncated or corrupt (chunk {name} fails its checksum).")
        if kind == b"IEND":
            return
        pos = end + 4


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
    pixels = _raster_to_unit(img)
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


def _raster_to_unit(img: Image.Image) -> np.ndarray:
    """Grey [0, 1] from any PNG/JPEG mode; alpha is dropped, colour is luminance."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        return np.clip(arr / top, 0.0, 1.0).astype(np.float32)
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

def read_dicom(data: bytes):
    """Parse a DICOM file with pydicom; a non-DICOM or broken header is a rejection."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise UnreadableImage(f"Not a valid DICOM file ({exc}).") from exc
    except Exception as exc:  # pydicom raises many types on a damaged header
        raise UnreadableImage(f"The DICOM header is corrupt ({type(exc).__name__}: {exc}).") from exc


def check_dicom_header(ds, limits: Limits) -> None:
    """Refuse from the header alone: no pixels, wrong modality, multi-frame, wrong size."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if "Rows" in ds or "Columns" in ds:
            raise UnreadableImage("The DICOM file describes an image but its Pixel Data is missing: "
                                  "the file is truncated or corrupt.")
        raise NoPixelData("This DICOM object has no image (no Pixel Data): e.g. a report or structured document.")
    modality = str(ds.get("Modality", "") or "").upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        raise NotARadiograph(
            f"Modality {modality} is not a plain radiograph; only CR/DX chest radiographs are accepted."
        )
    body = str(ds.get("BodyPartExamined", "") or "").upper().replace(" ", "")
    if body in NON_CHEST_BODY_PARTS:
        raise NotARadiograph(f"Body part {body} is not a chest radiograph.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise NotARadiograph(f"Multi-frame DICOM ({frames} frames) is not a single radiograph.")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise UnreadableImage("The DICOM header gives no image size (Rows/Columns).")
    _check_shape(rows, cols, limits)


def dicom_modality_values(ds) -> np.ndarray:
    """Stored pixels through the Modality LUT (rescale slope/intercept or LUT sequence)."""
    from pydicom.pixels import apply_modality_lut

    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise UnreadableImage(
            f"The DICOM pixel data cannot be decoded ({type(exc).__name__}: {exc})."
        ) from exc
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
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR")
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
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    meta = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "") or "") or None,
        "view_position": str(ds.get("ViewPosition", "") or "") or None,
        "width": int(ds.Columns),
        "height": int(ds.Rows),
        "pixel_spacing": [float(s) for s in spacing] if spacing else None,
        "photometric": photometric,
        "bits_stored": int(ds.get("BitsStored", 0) or 0) or None,
        "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else None,
        "patient_age": _dicom_age(ds.get("PatientAge")),
        "patient_sex": (str(ds.get("PatientSex", "") or "") or None),
    }
    return DecodedImage(pixels=np.ascontiguousarray(unit, dtype=np.float32), metadata=meta)


def _dicom_age(value: Any) -> int | None:
    """'057Y' -> 57; months/weeks/days become 0 years. Age is kept, identity is not."""
    if not value:
        return None
    text = str(value).strip().upper()
    try:
        number = int(text[:-1]) if text[-1] in "YMWD" else int(text)
    except ValueError:
        return None
    return number if text.endswith("Y") or text[-1].isdigit() else 0
