"""How well the out-of-domain gate separates chest radiographs from everything else,
measured on real images that exist offline:

* outside: the photographs and scans that scikit-image and scikit-learn ship, and the CT
  and MR images that pydicom ships, rendered to 8-bit PNG the way someone would export a
  slice and upload it;
* inside: every chest radiograph under ``../shared/data`` (NIH at 1024, 512 and 64 px,
  the CR DICOMs, the PadChest, COVID and TBX11K files).

Every image goes through the product's own decoder (``core.decode``) before the model.
``cxr domain-check [--model DIR] [--shared DIR] [--write-card]`` prints the
figures (and writes them into the model card with ``--write-card``).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SKIMAGE_IMAGES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "checkerboard",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
    "shepp_logan_phantom",
)
PYDICOM_SCANS = (
    "CT_small.dcm",
    "MR_small.dcm",
    "liver_1frame.dcm",
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
    "693_J2KI.dcm",
    "JPEG-lossy.dcm",
    "JPEGLSNearLossless_16.dcm",
    "MR_small_jp2klossless.dcm",
)
CHEST_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm"}


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Min-max to 8 bits, as an export of a CT or MR slice to PNG does."""
    a = np.asarray(pixels, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] not in (3, 4):
        a = a[0]
    lo, hi = float(a.min()), float(a.max())
    return np.round((a - lo) / max(hi - lo, 1e-9) * 255).astype(np.uint8)


def outside_images() -> Iterator[tuple[str, bytes]]:
    """(name, PNG/JPEG bytes) of real non-radiograph images shipped by installed packages."""
    import pydicom
    import skimage.data
    from pydicom.data import get_testdata_file
    from sklearn.datasets import load_sample_images

    for name in SKIMAGE_IMAGES:
        fetch = getattr(skimage.data, name, None)
        if fetch is None:
            continue
        image = fetch()
        if image.dtype != np.uint8:
            image = _to_uint8(image)
        yield f"skimage.{name}", _png(image)
    for name, image in zip(("china", "flower"), load_sample_images().images, strict=True):
        yield f"sklearn.{name}", _png(image)
    for name in PYDICOM_SCANS:
        path = get_testdata_file(name)
        if path is None:
            continue
        ds = pydicom.dcmread(path)
        try:
            pixels = ds.pixel_array
        except Exception:  # noqa: BLE001 - a bundled file no installed plugin decodes is skipped
            continue
        yield f"pydicom.{name} ({ds.get('Modality', '?')})", _png(_to_uint8(pixels))


def chest_radiographs(shared: Path) -> Iterator[tuple[str, bytes]]:
    """(relative name, file bytes) of every radiograph under ``shared``."""
    for path in sorted(shared.rglob("*")):
        if path.is_file() and path.suffix.lower() in CHEST_SUFFIXES:
            yield str(path.relative_to(shared)), path.read_bytes()


def gate_results(analyzer, items: Iterator[tuple[str, bytes]], batch: int = 16) -> list[dict]:
    """Decode each item with the product's decoder and score it with the analyzer's gate.

    Uses the plain forward pass of the identity view, which is what the gate reads.
    """
    from core.decode import decode_bytes
    from core.errors import RejectedInput

    results: list[dict[str, object]] = []
    pending: list[tuple[str, np.ndarray]] = []

    def flush():
        if not pending:
            return
        _, _, pooled = analyzer.raw_scores([img for _, img in pending])
        scores = analyzer.gate.score(pooled)
        for (name, _), score in zip(pending, scores, strict=True):
            results.append({"name": name, "score": float(score), "inside": bool(score <= analyzer.gate.threshold)})
        pending.clear()

    for name, data in items:
        try:
            pending.append((name, decode_bytes(data).pixels))
        except RejectedInput as exc:
            results.append({"name": name, "rejected": str(exc)})
        if len(pending) >= batch:
            flush()
    flush()
    return results


def domain_report(analyzer, shared: Path) -> dict:
    """Fractions marked outside (non-radiographs) and inside (radiographs)."""
    outside = gate_results(analyzer, outside_images())
    inside = gate_results(analyzer, chest_radiographs(shared))
    scored_out = [r for r in outside if "score" in r]
    scored_in = [r for r in inside if "score" in r]
    return {
        "non_radiographs": {
            "n": len(scored_out),
            "n_rejected_by_decoder": len(outside) - len(scored_out),
            "fraction_outside": round(float(np.mean([not r["inside"] for r in scored_out])), 4),
            "marked_inside": [r["name"] for r in scored_out if r["inside"]],
        },
        "chest_radiographs": {
            "n": len(scored_in),
            "n_rejected_by_decoder": len(inside) - len(scored_in),
            "fraction_inside": round(float(np.mean([r["inside"] for r in scored_in])), 4),
            "marked_outside": [r["name"] for r in scored_in if not r["inside"]],
        },
        "sources": (
            "outside: scikit-image and scikit-learn sample images, pydicom's CT/MR test files rendered "
            "to 8-bit PNG; inside: every radiograph in shared/data (NIH 1024/512/64 px, CR DICOM, "
            "PadChest, COVID, TBX11K)"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    from core.inference import Analyzer

    parser = argparse.ArgumentParser(prog="cxr domain-check")
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--write-card", action="store_true", help="store the figures in the model card")
    args = parser.parse_args(argv)
    analyzer = Analyzer(args.model, views=["identity"])
    if analyzer.gate is None:
        print(f"{args.model} has no domain gate", file=sys.stderr)
        return 2
    report = domain_report(analyzer, args.shared)
    print(json.dumps(report, indent=2))
    if args.write_card:
        from core.model_card import ModelCard

        card = ModelCard.load(args.model)
        card.domain_gate["check"] = report
        card.save(args.model)
    return 0
