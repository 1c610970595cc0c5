"""Which images of a study the model reads, and how their results combine into the study's.

The model was trained on frontal chest radiographs (PA/AP). A lateral or other view is
kept and shown to the reader but not analysed, with the reason. An image with no view
information at all (a PNG or JPEG upload, a DICOM without ViewPosition or a view code)
is analysed: the reader sees the same out-of-domain gate as for any image.

Combination rule: a study's probability for a label is the maximum over its analysed
frontal images (a finding visible on one view is present in the study); its heatmap and
spread come from that image. Images outside the model's domain do not contribute unless
every image is outside, and then the study is outside.
"""

from __future__ import annotations

import numpy as np

from core.analysis import Analysis

FRONTAL = frozenset({"PA", "AP"})
FRONTAL_CODE_WORDS = ("postero-anterior", "antero-posterior", "posteroanterior", "anteroposterior")


def analysed_view(view_position: str | None, view_code_meaning: str | None) -> tuple[bool, str | None]:
    """(analysed, reason when not) from ViewPosition and the view code's meaning."""
    position = (view_position or "").strip().upper()
    meaning = (view_code_meaning or "").strip().lower()
    if position in FRONTAL or any(word in meaning for word in FRONTAL_CODE_WORDS):
        return True, None
    if position or meaning:
        shown = position or meaning
        return False, f"{shown} view: the model reads frontal (PA/AP) chest radiographs only"
    return True, None


def combine(analyses: list[Analysis]) -> tuple[Analysis, dict[str, int]]:
    """The study's result from its images' results, and for each label the index of the
    image it came from (see the module's rule)."""
    if not analyses:
        raise ValueError("a study needs at least one analysed image")
    inside = [i for i, a in enumerate(analyses) if a.in_domain]
    pool = inside or list(range(len(analyses)))
    labels = list(analyses[pool[0]].probabilities)
    source = {lab: max(pool, key=lambda i: analyses[i].probabilities[lab]) for lab in labels}
    first = analyses[pool[0]]

    cams = np.stack([analyses[source[lab]].cams[j] for j, lab in enumerate(labels)])
    abnormal = [a for i in pool if (a := analyses[i].abnormal) is not None]
    domain = [d for a in analyses if (d := a.domain_score) is not None]
    combined = Analysis(
        probabilities={lab: analyses[source[lab]].probabilities[lab] for lab in labels},
        spread={lab: analyses[source[lab]].spread[lab] for lab in labels},
        flagged=[lab for lab in labels if lab in analyses[source[lab]].flagged],
        cams=cams,
        width=first.width,
        height=first.height,
        tta_views=first.tta_views,
        thresholds=dict(first.thresholds),
        abnormal=max(abnormal) if abnormal else None,
        in_domain=bool(inside),
        domain_score=min(domain) if domain else None,
    )
    return combined, source
