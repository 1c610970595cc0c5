"""The CPU runtime: the ONNX trunk with the head from the weights file gives the same
outputs as the Keras model on real radiographs; Grad-CAM from the head's weights equals the
Jacobian form; the engine is chosen by what the folder and the machine have; a tampered or
missing runtime file is refused."""

import json
import shutil

import numpy as np
import pytest

from core.errors import ModelCardMismatch
from tests.conftest import DEFAULT_MODEL, real_image_files


@pytest.fixture(scope="module")
def radiographs():
    """Every real radiograph of the shared data (NIH PNGs, other sets' JPEG/PNG, the CR DICOM)."""
    from core.decode import decode_bytes

    files = real_image_files()
    if not files:
        pytest.skip("real data not available (../shared/data)")
    return [decode_bytes(p.read_bytes()).pixels for p in files]


def test_cams_from_head_weights_equal_the_jacobian_grad_cam(identity_analyzer):
    """On the default model's own head and random non-negative activations (as after the
    trunk's swish, mostly positive), the matrix-product maps equal head_cams' Jacobian maps."""
    import tensorflow as tf

    from core.inference import head_cams
    from core.linear_head import cams_from_head

    rng = np.random.default_rng(0)
    activations = np.abs(rng.normal(size=(3, 7, 7, 1280))).astype(np.float32)
    activations[0, :, :, :] *= -0.01  # a map that goes negative everywhere for some labels
    _, jacobian = head_cams(tf.constant(activations), identity_analyzer._head_logits)
    kernel = identity_analyzer.head[-1].get_weights()[0]
    np.testing.assert_allclose(cams_from_head(activations, kernel), jacobian.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def onnx_analyzer():
    from core.onnx_analyzer import OnnxAnalyzer

    if "onnx" not in json.loads((DEFAULT_MODEL / "model_card.json").read_text()).get("runtime", {}):
        pytest.skip("models/default has no ONNX runtime files")
    return OnnxAnalyzer(DEFAULT_MODEL)


@pytest.mark.slow
def test_onnx_runtime_reproduces_the_keras_model_on_real_radiographs(analyzer, onnx_analyzer, radiographs):
    images = radiographs
    np.testing.assert_allclose(
        onnx_analyzer.augmented_views(images[0]), analyzer.augmented_views(images[0]), atol=1e-4
    )  # the NumPy TTA views are TensorFlow's
    keras_out, onnx_out = analyzer.raw_outputs(images), onnx_analyzer.raw_outputs(images)
    np.testing.assert_allclose(onnx_out[0], keras_out[0], atol=1e-4)  # per-view probabilities
    np.testing.assert_allclose(onnx_out[1], keras_out[1], atol=1e-3)  # Grad-CAMs in [0, 1]
    np.testing.assert_allclose(onnx_out[3], keras_out[3], atol=1e-3 * np.abs(keras_out[3]).max())
    for a, b in zip(analyzer.analyse(images), onnx_analyzer.analyse(images), strict=True):
        assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 1e-4
        assert a.flagged == b.flagged and a.in_domain == b.in_domain
        assert b.domain_score == pytest.approx(a.domain_score, abs=1e-4)
    np.testing.assert_allclose(onnx_analyzer.forward(images), analyzer.forward(images), atol=1e-4)


def _copy_model(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, folder)
    return folder


def test_the_engine_is_chosen_by_the_folder_and_the_setting(tmp_path, monkeypatch):
    from core import runtime
    from core.runtime import Runtime, choose

    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: False)
    folder = _copy_model(tmp_path)
    card = json.loads((folder / "model_card.json").read_text())
    if "onnx" not in card.get("runtime", {}):
        pytest.skip("models/default has no ONNX runtime files")
    assert choose(folder) == Runtime.ONNX
    assert choose(folder, "tensorflow") == Runtime.TENSORFLOW
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: True)
    assert choose(folder) == Runtime.TENSORFLOW  # a GPU machine runs TensorFlow
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: False)
    card["runtime"] = {}
    (folder / "model_card.json").write_text(json.dumps(card))
    assert choose(folder) == Runtime.TENSORFLOW  # no ONNX files: TensorFlow
    with pytest.raises(ValueError, match="CXR_RUNTIME"):
        choose(folder, "tensorrt")


def test_a_tampered_or_missing_runtime_file_is_refused(tmp_path):
    from core.onnx_analyzer import OnnxAnalyzer

    folder = _copy_model(tmp_path)
    card = json.loads((folder / "model_card.json").read_text())
    if "onnx" not in card.get("runtime", {}):
        pytest.skip("models/default has no ONNX runtime files")
    trunk = folder / card["runtime"]["onnx"]["trunk"]["file"]
    trunk.write_bytes(trunk.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelCardMismatch, match="sha256"):
        OnnxAnalyzer(folder, warm_up=False)
    card["runtime"] = {}
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardMismatch, match="convert"):
        OnnxAnalyzer(folder, warm_up=False)


@pytest.mark.slow
def test_convert_writes_checked_onnx_files_and_keeps_the_version(tmp_path, radiographs):
    """``cxr models convert`` on a folder without runtime files (lite0): the card names the
    files with their sha256, the model's version does not change, and the ONNX analyzer
    then gives the Keras model's probabilities."""
    from cli.main import main
    from core.inference import Analyzer
    from core.model_card import ModelCard
    from core.onnx_analyzer import OnnxAnalyzer

    folder = tmp_path / "lite0"
    shutil.copytree(DEFAULT_MODEL.parent / "lite0", folder)
    before = ModelCard.load(folder)
    assert not before.runtime
    assert main(["models", "convert", "--model", str(folder)]) == 0
    after = ModelCard.load(folder)
    assert after.version == before.version and (folder / after.runtime["onnx"]["trunk"]["file"]).is_file()
    images = radiographs[:3]
    keras_probs = Analyzer(folder, views=["identity"]).raw_outputs(images)[0]
    onnx_probs = OnnxAnalyzer(folder, views=["identity"]).raw_outputs(images)[0]
    np.testing.assert_allclose(onnx_probs, keras_probs, atol=1e-4)
