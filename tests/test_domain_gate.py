"""The default model's out-of-domain gate on real images: photographs and CT/MR slices
shipped by installed packages are marked outside, real chest radiographs stay inside;
an outside image is read (ok) but nothing is flagged."""

import json
import subprocess
import sys

import pytest

from tests.conftest import DEFAULT_MODEL, ROOT, SHARED, shared
from training.domain_check import chest_radiographs, domain_report, outside_images

pytest.importorskip("skimage", reason="scikit-image (requirements-dev.txt) is not installed")
pytestmark = pytest.mark.slow  # scores 1,300 real radiographs and 31 other images


@pytest.fixture(scope="module")
def report(identity_analyzer):
    shared("nih")
    if identity_analyzer.gate is None:
        pytest.skip("the default model has no domain gate")
    return domain_report(identity_analyzer, SHARED)


def test_non_radiographs_are_marked_outside(report):
    outside = report["non_radiographs"]
    assert outside["n"] >= 30
    assert outside["fraction_outside"] >= 0.95, outside["marked_inside"]


def test_chest_radiographs_stay_inside(report):
    inside = report["chest_radiographs"]
    assert inside["n"] >= 1300  # every folder: NIH 1024/512/64 px, CR DICOMs, PadChest, COVID, TBX11K
    assert inside["n_rejected_by_decoder"] == 0
    assert inside["fraction_inside"] >= 0.99, inside["marked_outside"]


def test_card_states_the_figures_it_was_checked_with(report):
    from core.model_card import ModelCard

    check = ModelCard.load(DEFAULT_MODEL).domain_gate["check"]
    assert check["non_radiographs"]["fraction_outside"] == pytest.approx(report["non_radiographs"]["fraction_outside"])
    assert check["chest_radiographs"]["fraction_inside"] == pytest.approx(
        report["chest_radiographs"]["fraction_inside"]
    )


def test_predict_reads_an_outside_image_and_flags_nothing(tmp_path):
    name, data = next((n, d) for n, d in outside_images() if n == "skimage.coffee")
    photo = tmp_path / "coffee.png"
    photo.write_bytes(data)
    chest = next(p for p in sorted((shared("nih", "full")).glob("*.png")))
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "predict", str(photo), str(chest), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[0]["ok"] is True and rows[0]["in_domain"] is False and rows[0]["flagged"] == []
    assert rows[1]["in_domain"] is True
    assert rows[0]["domain_score"] > rows[1]["domain_score"]


def test_the_sets_are_what_they_claim():
    names = [n for n, _ in outside_images()]
    assert any(n.startswith("pydicom.CT_small") for n in names) and any("MR" in n for n in names)
    assert any(n.startswith("sklearn.") for n in names) and "skimage.chelsea" in names
    radiographs = [n for n, _ in chest_radiographs(shared())]
    assert any(n.startswith("dicom/") for n in radiographs) and any(n.startswith("other/") for n in radiographs)
