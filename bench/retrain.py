"""Retraining the head on the site's reads: time at 500, 2,000 and 10,000 site studies
(synthetic features of the real width, labels with the NIH prevalences) beside the
baseline in the same run, re-extracting the features from the images (decode + trunk
forward, measured on real radiographs and scaled to the same count).

Run: python -m bench.retrain [--sizes 500,2000,10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import require_shared, table

PREVALENCE = (0.10, 0.025, 0.04, 0.02, 0.12, 0.022, 0.015, 0.002, 0.18, 0.05, 0.056, 0.03, 0.012, 0.047, 0.54)


def synthetic_site(n: int, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, k)).astype(np.float32)
    direction = rng.normal(size=(k, len(PREVALENCE))) / np.sqrt(k)
    z = x @ direction + rng.normal(size=(n, len(PREVALENCE)))
    cuts = np.array([np.quantile(z[:, j], 1 - p) for j, p in enumerate(PREVALENCE)])
    y = (z > cuts).astype(int)
    return x, y


def fit_seconds(n: int, kernel: np.ndarray, bias: np.ndarray) -> float:
    from core.labels import LABELS
    from training.site_head import fit_site_head

    rng = np.random.default_rng(n)
    x, y = synthetic_site(n, kernel.shape[0], rng)
    cut1, cut2 = int(0.6 * n), int(0.8 * n)
    start = time.perf_counter()
    fit_site_head(LABELS, kernel, bias, (x[:cut1], y[:cut1]), (x[cut1:cut2], y[cut1:cut2]))
    return time.perf_counter() - start


def extraction_seconds_per_image(sample: int = 24) -> float:
    from core.decode import decode_bytes
    from core.inference import Analyzer
    from tests.conftest import DEFAULT_MODEL

    files = sorted((require_shared() / "nih" / "dev512").glob("*.png"))[:sample]
    analyzer = Analyzer(DEFAULT_MODEL, views=["identity"])
    start = time.perf_counter()
    for path in files:
        analyzer.raw_outputs([decode_bytes(path.read_bytes()).pixels])
    return (time.perf_counter() - start) / len(files)


def main() -> None:
    from pathlib import Path

    from training.head_weights import read_head

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="500,2000,10000")
    args = parser.parse_args()
    kernel, bias = read_head(Path(__file__).resolve().parent.parent / "models/default/model.weights.h5", 15)
    per_image = extraction_seconds_per_image()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows.append(
            {
                "site_studies": n,
                "head_refit_s": fit_seconds(n, kernel, bias),
                "baseline_reextract_features_s": per_image * n,
            }
        )
    table(rows, f"Head refit on kept features vs re-extracting them ({per_image * 1000:.0f} ms per image measured)")


if __name__ == "__main__":
    main()
