"""The 15 NIH ChestX-ray14 labels and parsing of NIH-format label tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FINDINGS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema",
    "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening",
    "Pneumonia", "Pneumothorax",
)
NO_FINDING = "No Finding"
LABELS: tuple[str, ...] = FINDINGS + (NO_FINDING,)

# How much a finding above its threshold raises a study in the worklist: findings that
# need action within hours weigh more than chronic ones.
URGENCY: dict[str, float] = {
    "Pneumothorax": 3.0, "Edema": 1.5, "Consolidation": 1.5, "Pneumonia": 1.5, "Effusion": 1.3,
    "Mass": 1.3, "Cardiomegaly": 1.1, "Atelectasis": 1.0, "Infiltration": 1.0, "Nodule": 1.1,
    "Emphysema": 0.8, "Fibrosis": 0.8, "Hernia": 0.8, "Pleural_Thickening": 0.8, NO_FINDING: 0.0,
}


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


if __name__ == "__main__":  # python -m core.labels import CSV
    import sys

    from core.reference_labels import main

    sys.exit(main())
