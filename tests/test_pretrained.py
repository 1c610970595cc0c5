"""ImageNet initialisation: the PyTorch checkpoint read without torch, converted to Keras,
proven on real photographs; calibration and the out-of-domain gate as pure functions."""

import io
import pickle

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.calibration import (
    Platt,
    expected_calibration_error,
    fit_platt,
    reliability_bins,
)
from core.domain import DomainGate, fit_gate
from training import pretrained

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (requirements-dev.txt) is not installed")


@pytest.fixture(scope="module")
def state_dict():
    return pretrained.read_legacy_state_dict(pretrained.default_checkpoint())


@pytest.fixture(scope="module")
def lite0(state_dict):
    model = pretrained.build_lite0(include_top=True)
    assert pretrained.load_lite0_into(model, state_dict) == 98  # convs + batch norms, one to one
    return model


def _top5(model, rgb: np.ndarray) -> list[int]:
    x = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)[None]
    return list(np.argsort(model.predict(x, verbose=0)[0])[::-1][:5])


def test_checkpoint_reads_without_torch(state_dict):
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_fc.weight"].shape == (1000, 1280)
    assert all(np.isfinite(v).all() for v in state_dict.values() if v.dtype.kind == "f")


def test_converted_lite0_recognises_a_cat(lite0):
    assert _top5(lite0, skimage_data.chelsea())[0] in range(281, 286)  # tabby ... Egyptian cat


def test_converted_lite0_recognises_coffee(lite0):
    assert _top5(lite0, skimage_data.coffee())[0] in (967, 968, 504)  # espresso, cup, coffee mug


def test_b0_backbone_takes_every_conv_and_opens_its_gates(state_dict):
    import keras

    backbone = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(224, 224, 3))
    assert pretrained.load_lite0_into(backbone, state_dict) == 98
    np.testing.assert_array_equal(
        backbone.get_layer("stem_conv").get_weights()[0], state_dict["_conv_stem.weight"].transpose(2, 3, 1, 0)
    )
    kernel, bias = backbone.get_layer("block2a_se_expand").get_weights()
    assert not kernel.any() and np.allclose(bias, pretrained.SE_GATE_BIAS)


def test_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    for obj in (pretrained.LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(obj, buf)
    pickle.dump(Evil(), buf)
    path = tmp_path / "evil.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(pretrained.CheckpointError, match="refusing"):
        pretrained.read_legacy_state_dict(path)


def test_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(pickle.dumps(12345))
    with pytest.raises(pretrained.CheckpointError, match="magic"):
        pretrained.read_legacy_state_dict(path)


# ---------------------------------------------------------------- calibration
def test_platt_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    z = rng.normal(size=20000)
    y = rng.random(20000) < 1 / (1 + np.exp(-z))  # true P(y) = sigmoid(z)
    raw = 1 / (1 + np.exp(-(2.0 * z + 1.5)))  # over-confident and shifted
    platt = fit_platt(y, raw)
    assert platt.slope == pytest.approx(0.5, abs=0.05)
    assert platt.intercept == pytest.approx(-0.75, abs=0.08)
    assert expected_calibration_error(y, platt.apply(raw)) < 0.02 < expected_calibration_error(y, raw)


def test_platt_keeps_the_ranking_and_handles_one_class():
    rng = np.random.default_rng(1)
    p = rng.random(200)
    y = rng.random(200) < 0.1
    cal = fit_platt(y, p).apply(p)
    assert roc_auc_score(y, cal) == pytest.approx(roc_auc_score(y, p))
    assert fit_platt(np.zeros(50), p[:50]) == Platt()
    inverted = fit_platt(p > 0.5, 1 - p)  # anti-correlated: slope floored, never inverted
    assert inverted.slope > 0


def test_reliability_bins_count_every_pair():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.95, 0.96, 1.0])
    bins = reliability_bins(y, p, 10)
    assert sum(b["n"] for b in bins) == 5
    assert bins[9]["n"] == 3 and bins[9]["observed"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- domain gate
def test_gate_separates_a_shifted_distribution(tmp_path):
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(20, 100))
    train = rng.normal(size=(800, 20)) @ basis
    val = rng.normal(size=(200, 20)) @ basis
    gate = fit_gate(train, val, k=5)
    same = rng.normal(size=(500, 20)) @ basis
    other = rng.normal(size=(500, 100)) * 6  # off the training subspace
    assert gate.in_domain(same).mean() >= 0.98
    assert not gate.in_domain(other).any()
    reloaded = DomainGate.load(gate.save(tmp_path))
    np.testing.assert_allclose(reloaded.score(other[:5]), gate.score(other[:5]), atol=2e-3)  # stored as float16
