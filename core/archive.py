"""Read members of an uploaded zip archive without trusting it.

Member names are only used as labels (the study's original name); nothing in them
decides where a file is written. Counts, sizes and compression ratios are checked
from the central directory before anything is decompressed, and again while reading.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import UnsafeArchive

MAX_RATIO = 200  # a radiograph never compresses 200:1; zip bombs do


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 2000
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_member_bytes: int = 200 * 1024 * 1024


def _is_unsafe_name(name: str) -> bool:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return True
    return any(part == ".." for part in norm.split("/"))


def check_archive(zf: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    """Return the file members to read, or raise UnsafeArchive for the whole archive."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > limits.max_members:
        raise UnsafeArchive(f"The archive has {len(infos)} files; at most {limits.max_members} are accepted.")
    total = 0
    for info in infos:
        if _is_unsafe_name(info.filename):
            raise UnsafeArchive(f"The archive contains a path that leaves the archive: {info.filename!r}.")
        if info.flag_bits & 0x1:
            raise UnsafeArchive("Encrypted archives are not accepted.")
        if info.file_size > limits.max_member_bytes:
            raise UnsafeArchive(f"Archive member {info.filename!r} is too large ({info.file_size:,} bytes).")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1_000_000:
            raise UnsafeArchive(
                f"Archive member {info.filename!r} expands {info.file_size // info.compress_size}:1 (a zip bomb?)."
            )
        total += info.file_size
    if total > limits.max_total_bytes:
        raise UnsafeArchive(f"The archive expands to {total:,} bytes, above the limit of {limits.max_total_bytes:,}.")
    return infos


def iter_members(data: bytes, limits: ArchiveLimits | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield (display name, bytes) for each file member of a safe archive."""
    limits = limits or ArchiveLimits()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsafeArchive(f"The zip archive is corrupt ({exc}).") from exc
    with zf:
        infos = check_archive(zf, limits)
        for info in infos:
            base = posixpath.basename(info.filename.replace("\\", "/"))
            if base.startswith(".") or base.startswith("__MACOSX"):
                continue
            yield info.filename, _read_bounded(zf, info, limits.max_member_bytes)


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read at most ``cap`` bytes: the header's declared size may lie."""
    try:
        with zf.open(info) as fh:
            out = fh.read(cap + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UnsafeArchive(f"Archive member {info.filename!r} is corrupt ({exc}).") from exc
    if len(out) > cap:
        raise UnsafeArchive(f"Archive member {info.filename!r} expands beyond {cap:,} bytes.")
    return out
