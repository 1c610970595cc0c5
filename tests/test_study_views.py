"""Which images of a study are read, and the combination rule (core.study_views)."""

import numpy as np
import pytest

from core.analysis import Analysis
from core.study_views import analysed_view, combine


@pytest.mark.parametrize(
    "position, meaning, analysed",
    [
        ("PA", None, True),
        ("AP", None, True),
        (" pa ", None, True),
        ("LL", None, False),
        ("RL", None, False),
        ("LATERAL", None, False),
        (None, "postero-anterior", True),
        (None, "antero-posterior", True),
        (None, "lateral", False),
        (None, None, True),  # no view information (PNG/JPEG): read, the domain gate still applies
    ],
)
def test_frontal_views_are_analysed_others_kept_with_a_reason(position, meaning, analysed):
    ok, reason = analysed_view(position, meaning)
    assert ok is analysed and (reason is None) is analysed
    if not analysed:
        assert "frontal" in reason


def _analysis(probs: dict[str, float], flagged: list[str], value: float, inside: bool = True, abnormal=None):
    labels = list(probs)
    return Analysis(
        probabilities=probs,
        spread={lab: value / 10 for lab in labels},
        flagged=flagged,
        cams=np.full((len(labels), 7, 7), value, np.float32),
        width=64,
        height=64,
        tta_views=1,
        thresholds={lab: 0.5 for lab in labels},
        abnormal=abnormal,
        in_domain=inside,
        domain_score=value,
    )


def test_combination_takes_each_label_from_the_image_where_it_is_highest():
    a = _analysis({"Mass": 0.9, "Effusion": 0.2}, ["Mass"], 1.0, abnormal=0.6)
    b = _analysis({"Mass": 0.3, "Effusion": 0.7}, ["Effusion"], 2.0, abnormal=0.8)
    combined, source = combine([a, b])
    assert combined.probabilities == {"Mass": 0.9, "Effusion": 0.7}
    assert source == {"Mass": 0, "Effusion": 1} and sorted(combined.flagged) == ["Effusion", "Mass"]
    assert combined.cams[0].max() == 1.0 and combined.cams[1].max() == 2.0  # each map from its image
    assert combined.spread["Effusion"] == pytest.approx(0.2) and combined.abnormal == 0.8
    assert combined.in_domain and combined.domain_score == 1.0


def test_images_outside_the_domain_do_not_count_unless_all_are():
    inside = _analysis({"Mass": 0.2}, [], 1.0)
    outside = _analysis({"Mass": 0.99}, [], 9.0, inside=False)
    combined, source = combine([inside, outside])
    assert combined.probabilities["Mass"] == 0.2 and source["Mass"] == 0 and combined.in_domain
    only_outside, _ = combine([outside])
    assert not only_outside.in_domain and only_outside.flagged == []
    with pytest.raises(ValueError):
        combine([])
