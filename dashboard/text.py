"""Everything a user or a file supplies is shown as data, never as markup.

Streamlit renders markdown in titles, captions and alerts: a file named
``[click me](http://…).png`` or a DICOM ViewPosition of ``![x](http://…)`` would become a
live link or an image beacon. :func:`plain` escapes every markdown metacharacter and
removes bidirectional controls (a right-to-left override makes ``gpj.exe`` read as
``exe.jpg``), so the text reads exactly as stored.
"""

from __future__ import annotations

import re

MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'])")
# LRE, RLE, PDF, LRO, RLO (U+202A-E), LRI, RLI, FSI, PDI (U+2066-9), LRM, RLM, ALM
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def strip_bidi(text: str) -> str:
    return BIDI_CONTROLS.sub("", text)


def plain(value: object, limit: int = 500) -> str:
    """``value`` as inert markdown text, at most ``limit`` characters (then an ellipsis)."""
    text = strip_bidi(str(value)).replace("\r", " ").replace("\n", " ")
    if len(text) > limit:
        text = text[:limit] + "…"
    return MARKDOWN_SPECIALS.sub(r"\\\1", text)
