"""The 15 NIH ChestX-ray14 labels and parsing of NIH-format label tables.

These are the labels of NIH-format truth tables and of the models this project trains;
at run time the label set and its order come from the model card, never from here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
NO_FINDING = "No Finding"
LABELS: tuple[str, ...] = FINDINGS + (NO_FINDING,)


def parse_finding_labels(text: str) -> set[str]:
    """'Cardiomegaly|Effusion' -> {'Cardiomegaly', 'Effusion'}; unknown names are refused."""
    names = {part.strip() for part in str(text).split("|") if part.strip()}
    unknown = names - set(LABELS)
    if unknown:
        raise ValueError(f"unknown label(s) {sorted(unknown)}")
    return names


def label_vector(text: str) -> np.ndarray:
    names = parse_finding_labels(text)
    return np.array([1.0 if label in names else 0.0 for label in LABELS], dtype=np.float32)


def read_label_table(path: str | Path) -> pd.DataFrame:
    """Read an NIH-format CSV (``Image Index``, ``Finding Labels``, optional Patient ID...)."""
    df = pd.read_csv(path)
    missing = {"Image Index", "Finding Labels"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    return df


def patient_of(image_index: str) -> str:
    """NIH file names start with the patient number: '00000013_004.png' -> '00000013'."""
    return Path(image_index).name.split("_")[0]
