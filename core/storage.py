"""Files under the data folder. Every path is derived from a content hash or a
database id, never from anything a user supplied, and is checked to stay inside."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "dicom": ".dcm"}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_join(root: Path, relative: str | Path) -> Path:
    """Resolve ``relative`` under ``root`` and refuse anything that escapes it."""
    root = root.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"path {relative!s} escapes the data folder")
    return target


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """A random key kept in ``path``, made once however many processes ask at the same time.

    The key is written whole to a temporary file and then hard-linked to its name: linking
    fails when the name exists, so exactly one process's key wins and no reader ever sees a
    half-written file (an ``O_EXCL`` create would show the others an empty one)."""
    path = Path(path)
    if path.exists() and path.stat().st_size == nbytes:
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-key-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(nbytes))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process made it first: theirs is the key
            pass
    finally:
        os.unlink(tmp)
    key = path.read_bytes()
    if len(key) != nbytes:
        raise RuntimeError(f"{path.name} holds {len(key)} bytes, not a {nbytes}-byte key: remove it to make a new one")
    return key


def original_relpath(sha: str, file_format: str) -> str:
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError("not a sha256 hex digest")
    return f"originals/{sha[:2]}/{sha}{EXTENSIONS[file_format]}"


def preview_relpath(sha: str) -> str:
    return f"previews/{sha[:2]}/{sha}.png"


def heatmap_dir_relpath(study_id: int, model_version: str) -> str:
    """The folder of one study's heatmaps for one model version."""
    safe_version = "".join(c for c in model_version if c.isalnum())
    return f"heatmaps/{int(study_id)}/{safe_version}"


def store_bytes(data_dir: Path, relpath: str, data: bytes) -> Path:
    path = safe_join(data_dir, relpath)
    if not path.exists():
        atomic_write(path, data)
    return path


def png_bytes(pixels_u8: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(pixels_u8).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


CAMS_FILE = "cams.npz"


def cams_relpath(study_id: int, model_version: str) -> str:
    return f"{heatmap_dir_relpath(study_id, model_version)}/{CAMS_FILE}"


def write_heatmaps(
    data_dir: Path,
    study_id: int,
    model_version: str,
    labels: list[str],
    cams: np.ndarray,
    sources: list[int] | None = None,
) -> str:
    """Every label's Grad-CAM at the feature map's resolution (7 x 7 for the default
    model), float16, in one npz with the id of the image each was computed on; returns its
    path in the data folder. Why small: a map is a smooth 7 x 7 field, so upsampling it
    where it is shown (the browser, a PACS overlay) loses nothing, while writing full-size
    PNGs for every flagged label cost the worker more than the model. Rewriting is
    idempotent."""
    import io

    buf = io.BytesIO()
    arrays = {"cams": cams.astype(np.float16), "labels": np.array(labels)}
    if sources is not None:
        arrays["sources"] = np.asarray(sources, dtype=np.int64)
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
    rel = cams_relpath(study_id, model_version)
    atomic_write(safe_join(data_dir, rel), buf.getvalue())
    return rel


def read_heatmap(data_dir: Path, relpath: str, label: str, width: int, height: int) -> np.ndarray:
    """One label's stored map at an image's size, in [0, 1]: upsampled from the small maps
    file, or read from a full-size PNG written before maps were stored small."""
    from core.gradcam import upsample  # here: OpenCV is not loaded by every user of storage

    path = safe_join(data_dir, relpath)
    if path.suffix == ".png":
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        return upsample(pixels, width, height) if pixels.shape != (height, width) else pixels
    with np.load(path) as npz:
        names = [str(x) for x in npz["labels"]]
        if label not in names:
            raise KeyError(f"{relpath} holds no map for {label!r}")
        cam = npz["cams"][names.index(label)].astype(np.float32)
    return upsample(cam, width, height)


def load_cams(data_dir: Path, study_id: int, model_version: str) -> tuple[np.ndarray, list[str]] | None:
    """A study's stored low-resolution Grad-CAM maps and their labels, if the worker wrote them."""
    path = safe_join(data_dir, cams_relpath(study_id, model_version))
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return npz["cams"].astype(np.float32), [str(x) for x in npz["labels"]]


def cam_sources(data_dir: Path, study_id: int, model_version: str) -> dict[str, int]:
    """Label -> id of the image each stored map was computed on (empty for older maps)."""
    path = safe_join(data_dir, cams_relpath(study_id, model_version))
    if not path.is_file():
        return {}
    with np.load(path) as npz:
        if "sources" not in npz:
            return {}
        return dict(zip([str(x) for x in npz["labels"]], [int(x) for x in npz["sources"]], strict=True))


def iter_input_paths(paths: list[str]) -> list[Path]:
    """Expand folders (recursively, sorted) into the files they contain."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")))
        else:
            out.append(p)
    return out
