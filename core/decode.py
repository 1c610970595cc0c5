"""Decode an uploaded file (PNG, JPEG or DICOM) into one grey image in [0, 1].

The result is what the model sees. Display windowing for reviewers is separate
(:mod:`core.display`) so a reviewer's window/level never changes the model input.
Every failure is a :class:`core.errors.RejectedInput` with a message for the user.
"""

from __future__ import annotations

import warnings

from core.decoded_image import DecodedImage, Limits, check_pixels, check_shape
from core.dicom_decode import decode_dicom
from core.errors import ImageTooLarge, RejectedInput, UnreadableImage, UnsupportedFormat
from core.raster_decode import JPEG_MAGIC, PNG_MAGIC, decode_raster

__all__ = ["DecodedImage", "Limits", "decode_bytes", "sniff_format"]
ZIP_MAGIC = b"PK\x03\x04"


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
            image = decode_raster(data, kind, limits) if kind in ("png", "jpeg") else decode_dicom(data, limits)
    except RejectedInput:
        raise
    except MemoryError as exc:
        raise ImageTooLarge("The image needs more memory to decode than is available.") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure on an input is a rejection
        raise UnreadableImage(f"The image data is corrupt or cannot be read ({type(exc).__name__}).") from exc
    check_shape(image.height, image.width, limits)
    check_pixels(image.pixels)
    return image
