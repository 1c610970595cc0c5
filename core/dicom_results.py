"""DICOM result objects for the PACS, built with highdicom from plain values (no database):
a Comprehensive SR that records, per label, the calibrated probability, the threshold and
whether it is flagged, the out-of-domain result, the model and that this is a screening aid;
and per flagged finding a Grad-CAM overlay as a Secondary Capture image that references its
source image and is marked derived and not for diagnosis."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import cast

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from core.finding_codes import NO_UNITS, PRESENCE, PROBABILITY, PROCEDURE, THRESHOLD, Presence, finding_code

MANUFACTURER = "cxr-review (open source)"
NOTICE = "Screening aid for radiologist review, not a diagnosis; every study needs a radiologist's read."
SCHEME = "99CXR"  # this product's own codes, only where no standard concept exists
SR_SERIES_NUMBER, OVERLAY_SERIES_NUMBER = 9901, 9902
OUT_OF_DOMAIN = hd.sr.CodedConcept(value="OOD", scheme_designator=SCHEME, meaning="Image outside the model's domain")
DOMAIN_SCORE = hd.sr.CodedConcept(value="OODSCORE", scheme_designator=SCHEME, meaning="Domain distance score")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept(value="126010", scheme_designator="DCM", meaning="Qualitative Evaluations")


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
    """The SR of one analysed study as a DICOM TID 1500 Measurement Report (highdicom):
    per label one measurement group (TID 1501) whose finding type is the label's coded
    concept, with the model's call at its threshold as a coded Present/Absent, the
    calibrated probability and the threshold as numeric values, the algorithm by name and
    version, and the analysed images as the group's source. ``sources`` are the analysed
    images (headers suffice)."""
    algorithm = hd.sr.AlgorithmIdentification(name=model_name[:64] or "model", version=model_version[:64])
    images = [hd.sr.SourceImageForMeasurementGroup(ds.SOPClassUID, ds.SOPInstanceUID) for ds in sources]
    groups = [_finding_group(r, algorithm, images) for r in results]
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(), name=model_name[:64] or "model", manufacturer_name=MANUFACTURER
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=PROCEDURE,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    report[0].ContentSequence.append(_study_evaluations(in_domain, domain_score))
    with warnings.catch_warnings():  # a source's one-part patient name is the PACS's, kept as it is
        warnings.filterwarnings("ignore", message=".*person name.*")
        return _comprehensive_sr(sources, report[0], series_uid)


def _finding_group(r: LabelResult, algorithm, images) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    def number(name, value: float) -> hd.sr.Measurement:
        return hd.sr.Measurement(name=name, value=round(float(value), 6), unit=NO_UNITS, algorithm_id=algorithm)

    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=r.label[:64]),
        finding_type=finding_code(r.label),
        algorithm_id=algorithm,
        measurements=[number(PROBABILITY, r.probability), number(THRESHOLD, r.threshold)],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(PRESENCE, Presence.of(r.flagged).value)],
        source_images=images,
    )


def _study_evaluations(in_domain: bool | None, domain_score: float | None) -> hd.sr.ContainerContentItem:
    """TID 1500's study-level qualitative evaluations: the notice that this is a screening
    aid, and the out-of-domain result (coded Present/Absent) with its score."""
    items: list[hd.sr.ContentItem] = [hd.sr.TextContentItem(codes.DCM.Comment, NOTICE, relationship_type="CONTAINS")]
    if in_domain is not None:
        value = Presence.ABSENT if in_domain else Presence.PRESENT
        items.append(hd.sr.CodeContentItem(OUT_OF_DOMAIN, value.value, relationship_type="CONTAINS"))
    if domain_score is not None:
        items.append(hd.sr.NumContentItem(DOMAIN_SCORE, float(domain_score), NO_UNITS, relationship_type="CONTAINS"))
    container = hd.sr.ContainerContentItem(QUALITATIVE_EVALUATIONS, relationship_type="CONTAINS")
    container.ContentSequence = items  # type: ignore[assignment]  # pydicom types it as a DataElement
    return container


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


@dataclass(frozen=True)
class ReadFinding:
    """One finding of an SR as a receiving system reads it (codes, not label strings)."""

    label: str | None  # the model label its coded concept stands for (None: a code unknown here)
    code: hd.sr.CodedConcept
    present: bool
    probability: float
    threshold: float
    algorithm: tuple[str, str]  # (name, version)
    source_uids: tuple[str, ...]


def read_findings(sr: Dataset) -> list[ReadFinding]:
    """The findings of a TID 1500 SR, read with highdicom's template classes: what a PACS
    or reporting system that understands the template sees."""
    from core.finding_codes import label_of

    report = hd.sr.MeasurementReport.from_sequence([_root(sr)])
    out = []
    for group in report.get_image_measurement_groups():
        values = {m.name.value: float(m.value) for m in group.get_measurements()}
        evaluation = next(e for e in group.get_qualitative_evaluations() if e.name.value == PRESENCE.value)
        finding = group.finding_type
        if finding is None:
            raise ValueError("a measurement group of the report names no finding")
        presence = cast(hd.sr.CodedConcept, evaluation.value)  # a coded evaluation's value is a concept
        algorithm = _texts(group[0], {"111001", "111003"})
        out.append(
            ReadFinding(
                label_of(finding),
                finding,
                presence.value == Presence.PRESENT.value.value,
                values[PROBABILITY.value],
                values[THRESHOLD.value],
                (algorithm.get("111001", ""), algorithm.get("111003", "")),
                tuple(str(s.referenced_sop_instance_uid) for s in group.source_images),
            )
        )
    return out


def _texts(item: Dataset, concepts: set[str]) -> dict[str, str]:
    """TEXT values of the named concepts anywhere under ``item`` (the algorithm's name and version)."""
    out: dict[str, str] = {}
    for child in item.get("ContentSequence", []):
        name = child.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in child else None
        if child.ValueType == "TEXT" and name in concepts:
            out.setdefault(name, str(child.TextValue))
        out = _texts(child, concepts) | out
    return out


def _root(sr: Dataset) -> Dataset:
    """The SR document's root content item (the dataset itself holds it)."""
    root = Dataset()
    for keyword in ("ValueType", "ConceptNameCodeSequence", "ContinuityOfContent", "ContentTemplateSequence"):
        if keyword in sr:
            setattr(root, keyword, getattr(sr, keyword))
    root.ContentSequence = sr.ContentSequence
    return root
