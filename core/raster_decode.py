"""PNG and JPEG decoding into grey [0, 1]: chunk checksums, corrupt JPEG data, the
header's size checked before any pixel is decompressed, and the grey depth of 16-bit PNGs."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from core import pixel_transforms as px
from core.codec_errors import check_jpeg_data
from core.decoded_image import DecodedImage, Limits, check_shape
from core.errors import ImageTooLarge, RejectedInput, UnreadableImage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


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


def decode_raster(data: bytes, kind: str, limits: Limits) -> DecodedImage:
    if kind == "png":
        check_png_chunks(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            # Checked before load(): a forged header must not make us allocate.
            check_shape(height, width, limits)
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
