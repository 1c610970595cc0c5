"""The features of a model's own held-out test images, kept beside the model.

A retrained candidate differs from its parent in the head only, so both can be scored on
the project's held-out NIH test images from the trunk features alone. This file makes that
"nothing forgotten" comparison a matter of milliseconds at every retraining: the identity
view's pooled features of each image in the folder's ``test_images.txt`` (decoded by the
same door as the worker's, read by the same trunk), with the image's 15-label truth from
the NIH table and its patient (the bootstrap groups by patient). Derived numbers only; no
image leaves the shared data folder.

``cxr models reference --model DIR --images DIR [DIR ...] --labels CSV`` writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.decode import decode_bytes
from core.labels import label_vector, patient_of, read_label_table

FILE_NAME = "reference_features.npz"
BATCH = 16


def _find(name: str, folders: list[Path]) -> Path | None:
    return next((folder / name for folder in folders if (folder / name).is_file()), None)


def build(model_dir: Path, image_folders: list[Path], label_table: Path) -> Path:
    """Write ``model_dir/reference_features.npz``; every listed test image must be found."""
    from core.inference import Analyzer  # TensorFlow only when the file is built

    model_dir = Path(model_dir)
    names = (model_dir / "test_images.txt").read_text().split()
    paths = [_find(name, [Path(f) for f in image_folders]) for name in names]
    missing = [n for n, p in zip(names, paths, strict=True) if p is None]
    if missing:
        raise FileNotFoundError(f"{len(missing)} test images not found (first: {missing[0]})")
    found = [p for p in paths if p is not None]
    table = read_label_table(label_table).set_index("Image Index")
    analyzer = Analyzer(model_dir, views=["identity"], warm_up=False)
    features = []
    for start in range(0, len(paths), BATCH):
        images = [decode_bytes(p.read_bytes()).pixels for p in found[start : start + BATCH]]
        features.append(analyzer.raw_outputs(images)[3])
    truth = np.stack([label_vector(table.loc[n, "Finding Labels"]) for n in names]).astype(np.uint8)
    groups = np.array([int(patient_of(n)) for n in names])
    out = model_dir / FILE_NAME
    np.savez_compressed(
        out, features=np.concatenate(features).astype(np.float16), truth=truth, groups=groups, names=np.array(names)
    )
    return out
