"""Model engine: Grad-CAM against the formula, TTA against plain passes, the card,
the predict and evaluate command lines on real radiographs."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.decode import decode_bytes
from core.errors import ModelCardMismatch
from core.gradcam import grad_cam_numpy, overlay
from core.tta import AVAILABLE_VIEWS, resolve_views
from tests.conftest import DEFAULT_MODEL, NIH_LABELS, ROOT, real_image_files, shared


def _numpy_conv_relu(x, w, b):
    """Valid 2-D convolution + ReLU written out by hand (independent of TensorFlow)."""
    kh, kw, _, k = w.shape
    h, wd = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((h, wd, k))
    for i in range(h):
        for j in range(wd):
            patch = x[i : i + kh, j : j + kw, :]
            out[i, j] = np.tensordot(patch, w, axes=([0, 1, 2], [0, 1, 2])) + b
    return np.maximum(out, 0)


def test_grad_cam_equals_numpy_formula_on_known_weights():
    import keras

    from core.inference import head_cams

    rng = np.random.default_rng(3)
    conv = keras.layers.Conv2D(5, 3, activation="relu")
    pool = keras.layers.GlobalAveragePooling2D()
    dense = keras.layers.Dense(4)
    x = rng.normal(size=(2, 9, 9, 1)).astype(np.float32)
    conv.build((None, 9, 9, 1))
    dense.build((None, 5))
    w_conv, b_conv = rng.normal(size=(3, 3, 1, 5)), rng.normal(size=5) * 0.1
    w_dense, b_dense = rng.normal(size=(5, 4)), rng.normal(size=4)
    conv.set_weights([w_conv.astype(np.float32), b_conv.astype(np.float32)])
    dense.set_weights([w_dense.astype(np.float32), b_dense.astype(np.float32)])
    features = conv(x)
    logits, cams = head_cams(features, lambda f: dense(pool(f)))
    for n in range(2):
        a = _numpy_conv_relu(x[n].astype(np.float64), w_conv, b_conv)  # (7, 7, 5)
        np.testing.assert_allclose(features[n].numpy(), a, atol=1e-4)
        # d logit_l / d A_ijk = w_dense[k, l] / (h * w) for a GAP + dense head
        grads = np.broadcast_to((w_dense.T / a[..., 0].size)[:, None, None, :], (4, 7, 7, 5))
        np.testing.assert_allclose(cams[n].numpy(), grad_cam_numpy(a, grads), atol=1e-5)
        np.testing.assert_allclose(logits[n].numpy(), a.mean(axis=(0, 1)) @ w_dense + b_dense, atol=1e-4)


def test_grad_cam_numpy_relu_and_normalisation():
    feats = np.ones((2, 2, 1))
    grads = np.stack([np.ones((2, 2, 1)), -np.ones((2, 2, 1))])
    cams = grad_cam_numpy(feats, grads)
    assert cams[0].tolist() == [[1, 1], [1, 1]] and cams[1].tolist() == [[0, 0], [0, 0]]


def test_overlay_is_pure_and_keeps_cold_regions():
    grey = np.full((20, 30), 100, np.uint8)
    heat = np.zeros((20, 30), np.float32)
    heat[5:10, 5:10] = 1.0
    out = overlay(grey, heat, 0.5)
    assert out.shape == (20, 30, 3) and (out[0, 0] == 100).all() and not (out[7, 7] == 100).all()
    with pytest.raises(ValueError):
        overlay(grey, heat, 1.5)


def test_views_are_anatomically_plausible():
    views = resolve_views(None)
    assert len(views) == 8 and views[0].name == "identity"
    assert not any("flip" in name for name in AVAILABLE_VIEWS)
    assert all(abs(v.angle_deg) <= 10 and 0.85 <= v.scale <= 1.15 for v in views)
    with pytest.raises(ValueError, match="unknown TTA view"):
        resolve_views(["hflip"])


@pytest.fixture(scope="module")
def radiographs():
    return [
        decode_bytes(shared("nih", "full", n).read_bytes()).pixels for n in ("00000001_000.png", "00000013_004.png")
    ]


def test_identity_tta_equals_plain_forward(identity_analyzer, radiographs):
    analyses = identity_analyzer.analyse(radiographs)
    plain = identity_analyzer.calibrate(identity_analyzer.forward(radiographs))  # the card's Platt scaling
    got = np.array([[a.probabilities[lab] for lab in identity_analyzer.labels] for a in analyses])
    np.testing.assert_allclose(got, plain, atol=1e-5)
    assert all(max(a.spread.values()) == 0.0 for a in analyses)


def test_batched_views_equal_views_run_one_by_one(analyzer, radiographs):
    engine = analyzer
    batched = engine.analyse(radiographs)
    for image, analysis in zip(radiographs, batched):
        views = engine.augmented_views(image)
        assert views.shape[0] == 8
        singles = np.concatenate([engine.forward([v]) for v in views])  # one forward per view
        # calibration applies to the mean of the raw views; the spread is over calibrated views
        np.testing.assert_allclose(
            [analysis.probabilities[lab] for lab in engine.labels], engine.calibrate(singles.mean(0)), atol=1e-4
        )
        np.testing.assert_allclose(
            [analysis.spread[lab] for lab in engine.labels], engine.calibrate(singles).std(0), atol=1e-4
        )
    np.testing.assert_allclose(
        engine.augmented_views(radiographs[1]),
        engine._views_fn(engine._batch(radiographs)).numpy()[8:, ..., 0],
        atol=1e-6,
    )


def test_default_model_heatmaps_of_real_radiographs_are_not_constant(analyzer, radiographs):
    for analysis in analyzer.analyse(radiographs):
        assert analysis.cams.shape[0] == 15
        assert 0.0 <= analysis.cams.min() and analysis.cams.max() <= 1.0
        informative = [analysis.heatmap(j) for j in range(15) if analysis.cams[j].max() > 0]
        assert informative, "no label had positive evidence anywhere"
        for heat in informative:
            assert heat.shape == (1024, 1024) and heat.std() > 0.01


def test_card_travels_with_weights_and_mismatch_is_refused(tmp_path):
    from core.model import load_model
    from core.model_card import ModelCard

    card = ModelCard.load(DEFAULT_MODEL)
    assert set(card.thresholds) == set(card.labels) and card.evaluation["per_label"]
    folder = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL, folder)
    with open(folder / card.weights_file, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelCardMismatch, match="sha256"):
        load_model(folder)
    data = json.loads((DEFAULT_MODEL / "model_card.json").read_text())
    data["labels"] = data["labels"][:14]
    shutil.copy(DEFAULT_MODEL / card.weights_file, folder / card.weights_file)
    (folder / "model_card.json").write_text(json.dumps(data))
    with pytest.raises(ModelCardMismatch):
        load_model(folder)


@pytest.mark.slow
def test_predict_cli_on_every_real_file_and_a_bad_one(tmp_path):
    files = [str(p) for p in real_image_files()]
    if not files:
        pytest.skip("real data not available")
    bad = tmp_path / "broken.png"
    bad.write_bytes(shared("nih", "full", "00000001_000.png").read_bytes()[:3000])
    out_dir = tmp_path / "cams"
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "predict", *files, str(bad), "--gradcam", str(out_dir), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 1  # one input was rejected
    assert [r["file"] for r in rows] == files + [str(bad)]
    for r in rows[:-1]:
        assert r["ok"] and len(r["probabilities"]) == 15 and r["tta_views"] == 8
        assert r["model"]["version"] and set(r["flagged"]) <= set(r["probabilities"])
        assert 0.0 <= r["abnormal"] <= 1.0 and r["in_domain"] is True and r["domain_score"] > 0
        for path in r["gradcam"].values():
            assert (out_dir / path.split("/")[-1]).exists()
    assert rows[-1]["ok"] is False and "truncated or corrupt" in rows[-1]["error"]


@pytest.mark.slow
def test_card_evaluation_reproduced_by_core_evaluate():
    from core.model_card import ModelCard

    images = [str(shared("nih", "dev512")), str(shared("nih", "small64"))]
    card = ModelCard.load(DEFAULT_MODEL)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "evaluate",
            "--images",
            *images,
            "--labels",
            str(NIH_LABELS),
            "--model",
            str(DEFAULT_MODEL),
            "--only",
            str(DEFAULT_MODEL / "test_images.txt"),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["n_images"] == card.evaluation["n_images"]
    for label, row in card.evaluation["per_label"].items():
        assert report["per_label"][label]["auc"] == pytest.approx(row["auc"], abs=2e-3), label
    assert report["mean_auc_findings"] == pytest.approx(card.evaluation["mean_auc_findings"], abs=2e-3)
    assert report["abnormal_vs_no_finding_auc"] == pytest.approx(
        card.evaluation["abnormal_vs_no_finding_auc"], abs=2e-3
    )


def test_kept_features_are_what_the_head_reads(identity_analyzer, radiographs):
    """The float16 features kept with every analysis, put through the model's own head
    (pooling already done: one dense layer), give the identity view's probabilities: a head
    refitted on them later is a head for this trunk."""
    kernel, bias = identity_analyzer.model.get_layer("logits").get_weights()
    results = identity_analyzer.analyse(radiographs)
    raw = identity_analyzer.forward(radiographs)
    for analysis, expected in zip(results, raw):
        assert analysis.features.dtype == np.float16 and analysis.features.shape == (kernel.shape[0],)
        probs = 1.0 / (1.0 + np.exp(-(analysis.features.astype(np.float64) @ kernel + bias)))
        assert np.abs(probs - expected).max() < 5e-3
