"""A DICOM header's attributes as the rest of the code reads them, each checked and
bounded: numbers finite, code strings well formed, identifiers valid UIDs, the patient's
identity normalised for comparison (never stored as it is), age in years."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from core.errors import UnreadableImage


def int_attribute(ds, keyword: str, default: int) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError) as exc:
        raise UnreadableImage(f"The DICOM attribute {keyword} is not a whole number.") from exc


def finite_numbers(ds, keyword: str) -> list[float] | None:
    """The attribute's values as finite floats; None when absent; a rejection when malformed."""
    if keyword not in ds or ds[keyword].value in (None, ""):
        return None
    value = ds[keyword].value
    items = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise UnreadableImage(f"The DICOM attribute {keyword} is not numeric.") from exc
    if not numbers or not all(np.isfinite(numbers)) or max(abs(n) for n in numbers) > 1e12:
        raise UnreadableImage(f"The DICOM attribute {keyword} holds an invalid value.")
    return numbers


def dicom_default_window(ds) -> tuple[float | None, float | None]:
    """First Window Center/Width pair (the attributes may be multi-valued)."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None, None

    def first(v):
        try:
            return float(v[0]) if hasattr(v, "__len__") and not isinstance(v, (str, bytes)) else float(v)
        except (TypeError, ValueError, IndexError):
            return None

    return first(center), first(width)


def pixel_spacing(ds) -> tuple[float, float] | None:
    """Millimetres between pixel centres (row, column): PixelSpacing where the file has it
    (calibrated at the patient), else ImagerPixelSpacing (at the detector: a projection
    radiograph's measurement is then magnified by the beam's divergence, a few percent)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = finite_numbers(ds, keyword)
        if spacing is not None and len(spacing) == 2 and min(spacing) > 0:
            return float(spacing[0]), float(spacing[1])
    return None


def dicom_identity(ds) -> dict[str, str | None]:
    """The identifiers that place an instance in its study and series, and what the
    worklist shows (accession number, study date), each checked and bounded: a malformed
    UID reads as absent (the image becomes a study of its own), never as text to trust."""
    from pydicom.uid import UID

    def uid(keyword: str) -> str | None:
        value = str(ds.get(keyword, "") or "").strip()
        return value if value and len(value) <= 64 and UID(value).is_valid else None

    def text(keyword: str, size: int) -> str | None:
        value = "".join(ch for ch in str(ds.get(keyword, "") or "") if ch.isprintable()).strip()
        return value[:size] or None

    date = str(ds.get("StudyDate", "") or "").strip()
    codes = ds.get("ViewCodeSequence") or []
    meaning = str(codes[0].get("CodeMeaning", "") or "")[:64] if len(codes) else ""
    return {
        "study_instance_uid": uid("StudyInstanceUID"),
        "series_instance_uid": uid("SeriesInstanceUID"),
        "sop_instance_uid": uid("SOPInstanceUID"),
        "sop_class_uid": uid("SOPClassUID"),
        "accession_number": text("AccessionNumber", 16),
        "study_date": date if len(date) == 8 and date.isdigit() else None,
        "view_code_meaning": meaning or None,
    }


CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")


def code_string(value: Any) -> str | None:
    """A DICOM code string (CS: upper-case letters, digits, space and underscore, at most
    16 characters) or None: anything else in a CS attribute is a malformed or hostile
    header, read as absent rather than carried into the database and onto a screen."""
    text = str(value or "").strip()
    return text if CODE_STRING.fullmatch(text) else None


def patient_fields(ds) -> str:
    """The patient's identity as one normalised string (ID, issuer, name, birth date), to
    be digested under the site key by the caller and compared, never stored or shown as
    it is. Case, surrounding spaces and empty trailing name components do not count as a
    difference; any other difference, an absent field against a present one included, does."""

    def text(keyword: str) -> str:
        value = "".join(ch for ch in str(ds.get(keyword, "") or "") if ch.isprintable())
        return value.strip().upper()[:128]

    name = "^".join(part.strip() for part in text("PatientName").split("^")).rstrip("^= ")
    return "\x1f".join([text("PatientID"), text("IssuerOfPatientID"), name, text("PatientBirthDate")])


def dicom_age(value: Any) -> int | None:
    """'057Y' -> 57; months/weeks/days become 0 years. Age is kept, identity is not."""
    if not value:
        return None
    text = str(value).strip().upper()
    if len(text) > 4:  # the AS value representation is exactly four characters, e.g. 057Y
        return None
    try:
        number = int(text[:-1]) if text[-1] in "YMWD" else int(text)
    except ValueError:
        return None
    if not 0 <= number <= 150:
        return None
    return number if text.endswith("Y") or text[-1].isdigit() else 0
