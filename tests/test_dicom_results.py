"""The SR sent to the PACS is a DICOM TID 1500 Measurement Report that a receiving system
reads as codes: read back here with highdicom's template classes, never by hand."""

import io

import pydicom
import pytest

from core.dicom_results import LabelResult, read_findings, structured_report
from core.finding_codes import FINDING_CODES, PROCEDURE, finding_code
from core.labels import LABELS
from tests.conftest import shared


def _round_trip(ds) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def test_every_label_has_its_own_standard_code():
    assert set(FINDING_CODES) == set(LABELS)
    keys = [(c.scheme_designator, c.value) for c in FINDING_CODES.values()]
    assert len(set(keys)) == len(keys)
    assert {scheme for scheme, _ in keys} <= {"SCT", "DCM", "RADLEX"}
    with pytest.raises(ValueError, match="no coded concept"):
        finding_code("Made_Up_Finding")


def test_the_sr_is_tid_1500_with_coded_findings_values_and_algorithm():
    source = pydicom.dcmread(shared("dicom", "cr_chest.dcm"), stop_before_pixels=True)
    results = [LabelResult(label, 0.05 + 0.06 * n, 0.4, n % 3 == 0) for n, label in enumerate(LABELS)]
    sr = _round_trip(structured_report([source], results, "EfficientNetB0 probe", "1a2b3c", True, 3.25))
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.PatientID == source.PatientID and sr.StudyInstanceUID == source.StudyInstanceUID
    procedure = [
        item.ConceptCodeSequence[0].CodeValue
        for item in sr.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "121058"  # Procedure reported
    ]
    assert procedure == [PROCEDURE.value]
    read = {f.label: f for f in read_findings(sr)}
    assert list(read) == list(LABELS)
    for r in results:
        f = read[r.label]
        assert (f.code.scheme_designator, f.code.value) == (
            FINDING_CODES[r.label].scheme_designator,
            FINDING_CODES[r.label].value,
        )
        assert f.present == r.flagged
        assert f.probability == pytest.approx(r.probability, abs=1e-6) and f.threshold == pytest.approx(0.4)
        assert f.algorithm == ("EfficientNetB0 probe", "1a2b3c")
        assert f.source_uids == (source.SOPInstanceUID,)
    text = str(sr)
    assert "not a diagnosis" in text and "99CXR" not in "".join(
        item.ConceptCodeSequence[0].CodingSchemeDesignator
        for item in sr.ContentSequence
        if "ConceptCodeSequence" in item
    )
