"""Decode time per format and ingest throughput into SQLite, against plain Pillow/pydicom.

Run: python bench/ingest.py [--n 300]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time

import numpy as np

from bench.common import median_ms, require_shared, table


def plain_decode(data: bytes, kind: str) -> np.ndarray:
    """The baseline: what a script would do with the libraries directly."""
    if kind == "dicom":
        import pydicom

        return pydicom.dcmread(io.BytesIO(data)).pixel_array
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300, help="studies to ingest")
    args = parser.parse_args()
    shared = require_shared()
    from core.decode import decode_bytes

    inputs = [
        ("PNG 1024x1024", shared / "nih/full/00000001_000.png", "png"),
        ("CR DICOM (JPEG baseline)", shared / "dicom/cr_chest.dcm", "dicom"),
        ("JPEG 2373x2373", shared / "other/covid-19-pneumonia-58-prior.jpg", "jpeg"),
    ]
    rows = []
    for name, path, kind in inputs:
        data = path.read_bytes()
        ours = median_ms(lambda data=data: decode_bytes(data))
        base = median_ms(lambda data=data, kind=kind: plain_decode(data, kind))
        rows.append(
            {
                "input": name,
                "decode_ms (ours: checks, LUTs, [0,1])": ours,
                "baseline_ms (plain library read)": base,
                "ratio": ours / base,
            }
        )
    table(rows, "Decode, median of 15")

    files = sorted((shared / "nih/small64").glob("*.png"))[: args.n]
    blobs = [(f.name, f.read_bytes()) for f in files]
    t = time.perf_counter()
    for _, b in blobs:
        plain_decode(b, "png")
    base_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        from bench.common import bench_settings
        from db.bootstrap import open_database
        from services.ingest import ingest_upload

        settings = bench_settings(tmp)
        engine = open_database(settings)
        t = time.perf_counter()
        for name, b in blobs:
            ingest_upload(engine, settings, name, b)
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        for name, b in blobs:
            ingest_upload(engine, settings, name, b)
        dup_s = time.perf_counter() - t
        engine.dispose()
    table(
        [
            {
                "what": f"ingest {len(blobs)} real PNGs into SQLite (decode, hash, store, enqueue, audit)",
                "studies_per_s": len(blobs) / ours_s,
            },
            {"what": "same bytes again (duplicates detected by hash)", "studies_per_s": len(blobs) / dup_s},
            {"what": "baseline: Pillow decode only, no storage", "studies_per_s": len(blobs) / base_s},
        ],
        "Ingest throughput",
    )


if __name__ == "__main__":
    main()
