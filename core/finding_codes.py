"""Coded concepts for what the model reports, so a PACS or reporting system reads the SR's
findings as codes (DICOM TID 1500), not as this product's label strings.

Sources: concepts that DICOM PS3.16 itself uses are taken from pydicom's copy of its
code dictionary (Pleural effusion, Pulmonary edema, Pneumothorax, Cardiomegaly,
"No abnormality", Present, Probability, Threshold Value); the others are SNOMED CT
International concepts for the NIH ChestX-ray14 findings, checked against public SNOMED CT
browser and UMLS records where those were reachable (Pulmonary nodule, Pulmonary
emphysema, Radiologic infiltrate of lung, Fibrosis of lung). "Hernia" in ChestX-ray14 is
hiatal hernia. A site whose reporting system uses another code for a finding changes it
here; the SR and its tests read the table, never a copy of it.
"""

from __future__ import annotations

from enum import Enum

import highdicom as hd
from pydicom.sr.codedict import codes


def _sct(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator="SCT", meaning=meaning)


def _dicom(code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme_designator, meaning=code.meaning)


FINDING_CODES: dict[str, hd.sr.CodedConcept] = {
    "Atelectasis": _sct("46621007", "Atelectasis"),
    "Cardiomegaly": _dicom(codes.SCT.Cardiomegaly),
    "Consolidation": _sct("95436008", "Lung consolidation"),
    "Edema": _dicom(codes.SCT.PulmonaryEdema),
    "Effusion": _dicom(codes.SCT.PleuralEffusion),
    "Emphysema": _sct("87433001", "Pulmonary emphysema"),
    "Fibrosis": _sct("51615001", "Fibrosis of lung"),
    "Hernia": _sct("84089009", "Hiatal hernia"),
    "Infiltration": _sct("409609008", "Radiologic infiltrate of lung"),
    "Mass": _sct("309529002", "Lung mass"),
    "Nodule": _sct("786838002", "Pulmonary nodule"),
    "Pleural_Thickening": _sct("78381009", "Pleural thickening"),
    "Pneumonia": _sct("233604007", "Pneumonia"),
    "Pneumothorax": _dicom(codes.SCT.Pneumothorax),
    "No Finding": _dicom(codes.DCM.NoAbnormality),
}


class Presence(Enum):
    """What the model says of a finding at its operating threshold, as coded values."""

    PRESENT = _dicom(codes.SCT.Present)  # SCT 52101004
    ABSENT = _sct("2667000", "Absent")

    @classmethod
    def of(cls, flagged: bool) -> Presence:
        return cls.PRESENT if flagged else cls.ABSENT


PROCEDURE = _sct("399208008", "Plain chest X-ray")
PRESENCE = _sct("705057003", "Presence")  # the property the qualitative evaluation states
PROBABILITY = _dicom(codes.DCM.Probability)  # DCM 122157
THRESHOLD = _dicom(codes.DCM.ThresholdValue)  # DCM 122411
NO_UNITS = hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")


def finding_code(label: str) -> hd.sr.CodedConcept:
    """The coded concept of a model label; a label without one is an error, not a guess."""
    try:
        return FINDING_CODES[label]
    except KeyError:
        raise ValueError(f"no coded concept for the label {label!r}: add it to core.finding_codes") from None


def label_of(code: hd.sr.CodedConcept) -> str | None:
    """The model label a coded concept stands for (reading an SR back)."""
    for label, known in FINDING_CODES.items():
        if known.value == code.value and known.scheme_designator == code.scheme_designator:
            return label
    return None
