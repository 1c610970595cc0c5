"""What native decoders (libjpeg-turbo, libjpeg, OpenJPEG) report only on stderr when they
meet corrupt data and carry on with a partial image, and the refusal that follows."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from core.errors import UnreadableImage

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
