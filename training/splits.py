"""Splits by patient, never by image: random (optionally stratified by source folder) or
the official NIH train_val/test lists with validation patients drawn from train_val."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def patient_split(
    table: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int, strata: str | None = None
) -> pd.Series:
    """'train' / 'val' / 'test' per row, whole patients at a time (no patient in two splits).

    With ``strata`` (a column, e.g. the source folder) each stratum's patients are split
    by the same fractions, so every split holds the same mix of sources; a patient with
    rows in several strata is placed by their first row's.
    """
    if strata is None:
        return _split_patients(table["Patient ID"].astype(str), test_fraction, val_fraction, seed)
    first = table.assign(_pid=table["Patient ID"].astype(str)).drop_duplicates("_pid")
    split: dict[str, str] = {}
    for _, group in sorted(first.groupby(strata), key=lambda kv: str(kv[0])):
        part = _split_patients(group["_pid"], test_fraction, val_fraction, seed)
        split.update(zip(group["_pid"], part))
    return table["Patient ID"].astype(str).map(split)


def _split_patients(ids: pd.Series, test_fraction: float, val_fraction: float, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    patients = np.array(sorted(ids.unique()))
    rng.shuffle(patients)
    n_test = max(1, round(len(patients) * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(len(patients) * val_fraction))
    split = {p: "test" for p in patients[:n_test]}
    split.update({p: "val" for p in patients[n_test : n_test + n_val]})
    split.update({p: "train" for p in patients[n_test + n_val :]})
    return ids.map(split)


def official_split(table: pd.DataFrame, train_list: Path, test_list: Path, val_fraction: float, seed: int) -> pd.Series:
    """NIH's own train_val_list/test_list; validation patients are drawn from train_val."""
    test_names = set(Path(test_list).read_text().split())
    train_names = set(Path(train_list).read_text().split())
    split = pd.Series(None, index=table.index, dtype=object)
    split[table["Image Index"].isin(test_names)] = "test"
    tv = table[table["Image Index"].isin(train_names)]
    inner = patient_split(tv, 0.0, val_fraction, seed)
    split.loc[tv.index] = inner
    return split
