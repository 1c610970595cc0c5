"""DICOM result objects for the PACS, built with highdicom from plain values (no database):
a Comprehensive SR that records, per label, the calibrated probability, the threshold and
whether it is flagged, the out-of-domain result, the model and that this is a screening aid;
and per flagged finding a Grad-CAM overlay as a Secondary Capture image that references its
source image and is marked derived and not for diagnosis."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

MANUFACTURER = "cxr-review (open source)"
NOTICE = "Screening aid for radiologist review, not a diagnosis; every study needs a radiologist's read."
SCHEME = "99CXR"  # local coding scheme of this product (99 prefix: private by convention)
SR_SERIES_NUMBER, OVERLAY_SERIES_NUMBER = 9901, 9902


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


TITLE = hd.sr.CodedConcept(value="18748-4", scheme_designator="LN", meaning="Diagnostic imaging report")
FINDING = _code("FINDING", "Model finding")
LABEL = _code("LABEL", "Label")
PROBABILITY = _code("PROB", "Calibrated probability")
THRESHOLD = _code("THRESH", "Operating threshold")
FLAGGED = _code("FLAGGED", "Flagged for review")
OUT_OF_DOMAIN = _code("OOD", "Outside the model's domain")
DOMAIN_SCORE = _code("OODSCORE", "Domain score")
UNIT = hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")


@dataclass(frozen=True)
class LabelResult:
    label: str
    probability: float
    threshold: float
    flagged: bool


def structured_report(
    sources: list[Dataset],
    results: list[LabelResult],
    model_name: str,
    model_version: str,
    in_domain: bool | None,
    domain_score: float | None,
    series_uid: str | None = None,
) -> hd.sr.ComprehensiveSR:
    """The SR of one analysed study; ``sources`` are the analysed images (headers suffice)."""
    text = hd.sr.TextContentItem
    items = [
        text(codes.DCM.Comment, NOTICE, relationship_type="CONTAINS"),
        text(hd.sr.CodedConcept("111001", "DCM", "Algorithm Name"), model_name[:64], relationship_type="CONTAINS"),
        text(hd.sr.CodedConcept("111003", "DCM", "Algorithm Version"), model_version, relationship_type="CONTAINS"),
    ]
    for ds in sources:
        items.append(
            hd.sr.ImageContentItem(
                hd.sr.CodedConcept("121112", "DCM", "Source of Measurement"),
                ds.SOPClassUID,
                ds.SOPInstanceUID,
                relationship_type="CONTAINS",
            )
        )
    if in_domain is not None:
        items.append(text(OUT_OF_DOMAIN, "no" if in_domain else "yes", relationship_type="CONTAINS"))
    if domain_score is not None:
        items.append(hd.sr.NumContentItem(DOMAIN_SCORE, float(domain_score), UNIT, relationship_type="CONTAINS"))
    for r in results:
        group = hd.sr.ContainerContentItem(FINDING, relationship_type="CONTAINS")
        group.ContentSequence = [
            text(LABEL, r.label, relationship_type="CONTAINS"),
            hd.sr.NumContentItem(PROBABILITY, round(float(r.probability), 6), UNIT, relationship_type="CONTAINS"),
            hd.sr.NumContentItem(THRESHOLD, round(float(r.threshold), 6), UNIT, relationship_type="CONTAINS"),
            text(FLAGGED, "yes" if r.flagged else "no", relationship_type="CONTAINS"),
        ]
        items.append(group)
    root = hd.sr.ContainerContentItem(TITLE)
    root.ContentSequence = items
    with warnings.catch_warnings():  # a source's one-part patient name is the PACS's, kept as it is
        warnings.filterwarnings("ignore", message=".*person name.*")
        return _comprehensive_sr(sources, root, series_uid)


# Type 2 attributes the SR copies from its evidence: present (possibly empty) in a valid
# image, missing in some real ones; an empty value is what the standard allows there
TYPE2_FROM_EVIDENCE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _with_type2(ds: Dataset) -> Dataset:
    out = Dataset(ds)  # a shallow copy: the stored header is not changed
    for keyword in TYPE2_FROM_EVIDENCE:
        if keyword not in out:
            setattr(out, keyword, "")
    return out


def _comprehensive_sr(sources: list[Dataset], root, series_uid: str | None) -> hd.sr.ComprehensiveSR:
    return hd.sr.ComprehensiveSR(
        evidence=[_with_type2(ds) for ds in sources],
        content=root,
        series_instance_uid=series_uid or generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="CXR triage results (screening aid, not a diagnosis)",
    )


def overlay_image(source: Dataset, rgb: np.ndarray, label: str, instance_number: int, series_uid: str) -> hd.sc.SCImage:
    """A Grad-CAM overlay of ``label`` on ``source`` as a derived Secondary Capture image."""
    with warnings.catch_warnings():  # see structured_report
        warnings.filterwarnings("ignore", message=".*person name.*")
        image = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source,
            pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_uid,
            series_number=OVERLAY_SERIES_NUMBER,
            sop_instance_uid=generate_uid(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            patient_orientation=("L", "F"),
            series_description="CXR triage Grad-CAM overlays (not for diagnosis)",
        )
    image.ImageType = ["DERIVED", "SECONDARY", "GRADCAM"]
    image.BurnedInAnnotation = "NO"
    image.ImageComments = f"Grad-CAM heatmap for {label}: where the model looked. {NOTICE} Not for diagnosis."
    image.DerivationDescription = f"Grad-CAM of the model's {label} output overlaid on the source image"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    image.SourceImageSequence = [reference]
    return image
