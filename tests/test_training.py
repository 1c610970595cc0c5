"""The training pipeline end to end on a small set of real radiographs: ImageNet
initialisation, linear probe chosen by patient CV, calibration, thresholds with their
support, the domain gate, and a held-out evaluation that training.evaluate reproduces."""

import json
import subprocess
import sys

import pytest

from tests.conftest import NIH_LABELS, ROOT, shared

pytestmark = pytest.mark.slow  # trains a model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    images = tmp_path_factory.mktemp("imgs")
    for src in sorted(shared("nih", "dev512").glob("*.png"))[:72]:
        (images / src.name).symlink_to(src)
    out = tmp_path_factory.mktemp("run") / "m"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "train",
            "--images",
            str(images),
            "--labels",
            str(NIH_LABELS),
            "--out",
            str(out),
            "--backbone",
            "efficientnet_lite0",
            "--init",
            "imagenet",
            "--epochs",
            "0",
            "--input-size",
            "96",
            "--seed",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, images


def test_card_records_what_was_chosen_and_how(trained):
    from core.model_card import ModelCard

    out, _ = trained
    card = ModelCard.load(out)
    assert card.backbone == "efficientnet_lite0" and "ImageNet" in card.training["initialisation"]
    assert "chosen by 5-fold patient-grouped CV" in card.training["linear_probe"]
    assert set(card.calibration) == set(card.labels)
    assert set(card.threshold_support) == set(card.labels)
    assert any(card.threshold_reliable(lab) is False for lab in card.labels)  # tiny validation set
    assert card.domain_gate["threshold"] > 0 and (out / card.domain_gate["file"]).is_file()
    cal = card.evaluation["calibration"]
    assert (
        0 <= cal["ece_after"] <= 1 and sum(b["n"] for b in cal["reliability_after"]) == card.evaluation["n_images"] * 15
    )
    assert card.training["reproduce"].startswith("cxr train ")
    trunk = card.runtime["onnx"]["trunk"]  # the built folder carries its CPU runtime file
    assert (out / trunk["file"]).is_file() and len(trunk["sha256"]) == 64


def test_core_evaluate_reproduces_the_held_out_figures(trained):
    from core.model_card import ModelCard

    out, images = trained
    card = ModelCard.load(out)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "evaluate",
            "--images",
            str(images),
            "--labels",
            str(NIH_LABELS),
            "--model",
            str(out),
            "--only",
            str(out / "test_images.txt"),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["mean_auc_findings"] == pytest.approx(card.evaluation["mean_auc_findings"], abs=2e-3)
    assert report["abnormal_vs_no_finding_auc"] == pytest.approx(
        card.evaluation["abnormal_vs_no_finding_auc"], abs=2e-3
    )
