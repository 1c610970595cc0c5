"""The pure pixel transforms against the DICOM standard's formulas."""

import numpy as np
import pytest

from core import pixel_transforms as px


def test_linear_window_matches_ps33_formula():
    center, width = 40.0, 400.0
    x = np.arange(-500, 600, 7, dtype=np.float64)
    expected = np.where(
        x <= center - 0.5 - (width - 1) / 2,
        0.0,
        np.where(x > center - 0.5 + (width - 1) / 2, 1.0, ((x - (center - 0.5)) / (width - 1) + 0.5)),
    )
    np.testing.assert_allclose(px.window_linear(x, center, width), expected, atol=1e-6)


def test_width_one_is_a_threshold_and_bad_width_refused():
    out = px.window_linear(np.array([0.0, 9.0, 10.0, 11.0]), 10.0, 1.0)
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        px.window_linear(np.zeros(3), 0, 0.5)


def test_linear_exact_and_sigmoid():
    x = np.array([0.0, 50.0, 100.0])
    np.testing.assert_allclose(px.window_linear_exact(x, 50, 100), [0.0, 0.5, 1.0])
    s = px.window_sigmoid(x, 50, 100)
    assert s[1] == pytest.approx(0.5) and s[0] < 0.5 < s[2]


def test_rescale_and_invert():
    np.testing.assert_allclose(px.rescale_to_unit(np.array([10.0, 20.0, 30.0])), [0, 0.5, 1])
    assert px.rescale_to_unit(np.full(4, 7.0)).tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(px.invert_unit(np.array([0.0, 0.25, 1.0])), [1.0, 0.75, 0.0])
    with pytest.raises(ValueError):
        px.invert_unit(np.array([2.0]))
