"""Packing of per-label values into compact columns, with the label order they were
written in: a row written under one model's label set is read correctly under another
(labels it lacks read as unknown, never as another label's value)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SEPARATOR = "|"


def label_key(labels: Sequence[str]) -> str:
    """The stored form of a label order (labels never contain '|': NIH tables split on it)."""
    if any(SEPARATOR in lab for lab in labels):
        raise ValueError(f"a label must not contain {SEPARATOR!r}")
    return SEPARATOR.join(labels)


def pack_floats(values: Mapping[str, float], labels: Sequence[str]) -> bytes:
    return np.array([values[lab] for lab in labels], dtype="<f4").tobytes()


def _columns(row_key: str, wanted: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For each wanted label: its column in rows written with ``row_key``, and whether it has one."""
    index = {lab: j for j, lab in enumerate(row_key.split(SEPARATOR))}
    cols = np.array([index.get(lab, 0) for lab in wanted], dtype=np.int64)
    return cols, np.array([lab in index for lab in wanted], dtype=bool)


def unpack_floats(blobs: Sequence[bytes], row_keys: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """(n, len(wanted)) float32 in ``wanted`` order; NaN where a row's label set lacks a label."""
    out = np.full((len(blobs), len(wanted)), np.nan, np.float32)
    distinct = list(dict.fromkeys(row_keys))
    if len(distinct) == 1:  # the usual case: every row written under one label set
        cols, has = _columns(distinct[0], wanted)
        values = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
        out[:, has] = values[:, cols[has]]
        return out
    keys = np.asarray(row_keys, dtype=object)
    for key in distinct:
        rows = np.flatnonzero(keys == key)
        n_labels = len(key.split(SEPARATOR))
        values = np.frombuffer(b"".join(blobs[int(i)] for i in rows), dtype="<f4").reshape(len(rows), n_labels)
        cols, has = _columns(key, wanted)
        out[np.ix_(rows, np.flatnonzero(has))] = values[:, cols[has]]
    return out


def mask_of(present: Mapping[str, bool], labels: Sequence[str]) -> int:
    return sum(1 << j for j, lab in enumerate(labels) if present[lab])


def unmask(
    masks: Sequence[int] | np.ndarray, row_keys: Sequence[str], wanted: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(present, known), both (n, len(wanted)) bool: a label the row was not written with is unknown."""
    packed = np.asarray(masks, dtype=np.int64)
    present = np.zeros((len(packed), len(wanted)), bool)
    known = np.zeros((len(packed), len(wanted)), bool)
    keys = np.asarray(row_keys, dtype=object)
    for key in dict.fromkeys(row_keys):
        rows = np.flatnonzero(keys == key)
        cols, has = _columns(key, wanted)
        present[rows] = ((packed[rows, None] >> cols[None, :]) & 1).astype(bool) & has[None, :]
        known[rows] = has[None, :]
    return present, known
