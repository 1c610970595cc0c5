"""Mutation fuzzing of the decoder with Hypothesis (issue 10): byte flips, truncations,
overwritten runs and DICOM tag-value mutations of real radiographs and pydicom-built
DICOMs. Every outcome must be a decoded image (finite, 2-D, in [0, 1]) or a typed
rejection; anything else is a crash, and each crasher ever found is kept under
``tests/fuzz_regressions/`` and decoded again by ``test_kept_crashers_are_rejections``.

``pytest -m slow tests/test_fuzz.py -s`` runs 10,000 cases and prints its figures; the
default run does a fast smoke of the same strategy.
"""

from __future__ import annotations

import io
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.decode import Limits, decode_bytes
from core.errors import RejectedInput
from tests.conftest import SHARED
from tests.dicom_factory import JPEG2000Lossless, JPEGLSLossless, make_dicom

REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
LIMITS = Limits(max_pixels=4_000_000, min_side=16)
STATS: Counter = Counter()


@lru_cache(maxsize=1)
def seeds() -> tuple[tuple[str, bytes], ...]:
    """Real files (skipped when ../shared/data is absent) and pydicom-built DICOMs."""
    out = []
    for rel in (
        "nih/dev512/00000075_000.png",
        "nih/small64/00000013_005.png",
        "dicom/cr_chest.dcm",
        "dicom/cr_chest_monochrome1.dcm",
        "other/16747_3_1.jpg",
        "other/h0001.png",
    ):
        path = SHARED / rel
        if path.is_file():
            out.append((rel, path.read_bytes()))
    base = (np.linspace(0, 4000, 96 * 80).reshape(96, 80)).astype(np.uint16)
    out.append(("built 12-bit rescale window", make_dicom(base, slope=1.0, intercept=-1024.0, window=(1000, 3000))))
    out.append(("built MONOCHROME1", make_dicom(base, photometric="MONOCHROME1")))
    out.append(("built JPEG 2000", make_dicom(base, syntax=JPEG2000Lossless)))
    out.append(("built JPEG-LS", make_dicom(base, syntax=JPEGLSLossless)))
    return tuple(out)


def _tag_mutation(data: bytes, keyword_index: int, payload: bytes) -> bytes:
    """Overwrite one element's value bytes of a DICOM file (same length, raw)."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    elems = [e for e in ds if e.tag.group >= 0x0008 and e.VR not in ("SQ",) and e.value not in (None, b"", "")]
    if not elems:
        return data
    elem = elems[keyword_index % len(elems)]
    raw = elem.value if isinstance(elem.value, bytes) else str(elem.value).encode("latin-1", "replace")
    at = data.find(raw, 132)
    if at < 0 or not raw:
        return data
    patch = (payload * (len(raw) // max(1, len(payload)) + 1))[: len(raw)]
    return data[:at] + patch + data[at + len(raw) :]


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name, data = draw(st.sampled_from(seeds()))
    kind = draw(st.sampled_from(["flip", "truncate", "overwrite", "tag", "flip+truncate"]))
    b = bytearray(data)
    if "flip" in kind:
        for pos in draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=8)):
            b[pos] ^= 1 << draw(st.integers(0, 7))
    if "truncate" in kind:
        b = b[: draw(st.integers(0, len(b)))]
    if kind == "overwrite":
        start = draw(st.integers(0, len(b) - 1))
        b[start : start + 16] = draw(st.binary(min_size=1, max_size=16))
    if kind == "tag" and name.endswith(".dcm") or kind == "tag" and name.startswith("built"):
        payload = draw(st.sampled_from([b"abc", b"\xff", b"0", b"-1", b"NaN", b"1e308", b"\x00", b"9" * 8]))
        b = bytearray(_tag_mutation(bytes(b), draw(st.integers(0, 200)), payload))
    return f"{name} {kind}", bytes(b)


LAST_CASE = Path(tempfile.gettempdir()) / "cxr-fuzz-last-case.bin"


def check_one(name: str, data: bytes) -> str:
    """'accepted' or 'rejected'; any other exception is kept as a regression file and raised.

    The case is written to LAST_CASE first: if a native decoder aborts the process, the
    file that did it is still there to keep under tests/fuzz_regressions/."""
    LAST_CASE.write_bytes(data)
    try:
        image = decode_bytes(data, LIMITS)
    except RejectedInput:
        STATS["rejected"] += 1
        return "rejected"
    except Exception:
        REGRESSIONS.mkdir(exist_ok=True)
        import hashlib

        (REGRESSIONS / f"crasher-{hashlib.sha256(data).hexdigest()[:16]}.bin").write_bytes(data)
        raise
    assert image.pixels.ndim == 2 and np.isfinite(image.pixels).all(), name
    assert 0.0 <= float(image.pixels.min()) and float(image.pixels.max()) <= 1.0, name
    STATS["accepted"] += 1
    return "accepted"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(mutated())
def test_fuzz_smoke(case):
    check_one(*case)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(mutated())
def test_fuzz_10000_cases(case):
    check_one(*case)


def _kept_cases() -> list[tuple[str, bytes]]:
    """Crashers kept as files (from built inputs) or as XOR patches of a real file in
    ../shared/data (its bytes are never copied into the repository)."""
    import json

    cases = [(p.name, p.read_bytes()) for p in sorted(REGRESSIONS.glob("*.bin"))]
    for spec_path in sorted(REGRESSIONS.glob("*.json")):
        spec = json.loads(spec_path.read_text())
        source = SHARED / spec["source"]
        if not source.is_file():
            continue
        data = bytearray(source.read_bytes())
        for offset, mask in spec["xor"].items():
            data[int(offset)] ^= int(mask)
        cases.append((spec_path.name, bytes(data)))
    return cases


def test_kept_crashers_are_decoded_or_rejected_in_a_child_process():
    """Each kept crasher runs in a fresh interpreter: a native abort there fails this
    test instead of killing the test run."""
    import subprocess
    import sys

    cases = _kept_cases()
    if not cases:
        pytest.skip("no kept crasher can be rebuilt here (../shared/data absent)")
    script = (
        "import sys; from core.decode import decode_bytes; from core.errors import RejectedInput\n"
        "try:\n    decode_bytes(sys.stdin.buffer.read())\nexcept RejectedInput:\n    pass\n"
    )
    for name, data in cases:
        proc = subprocess.run(
            [sys.executable, "-c", script],
            input=data,
            capture_output=True,
            cwd=Path(__file__).parent.parent,
            timeout=120,
        )
        assert proc.returncode == 0, (name, proc.returncode, proc.stderr[-1500:])
