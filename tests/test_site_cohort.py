"""The site's labelled studies split by patient: complete studies only, every patient in
exactly one part, the split stable as the site grows."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from training.site_cohort import Part, patient_part, site_labels

LABELS = ("Effusion", "Mass", "No Finding")


def test_only_complete_studies_are_kept_and_each_patient_is_in_one_part():
    rng = np.random.default_rng(0)
    n = 3000
    groups = np.array([f"P{i // 3}" for i in range(n)])  # three studies per patient
    truth = (rng.random((n, 3)) < 0.3).astype(float)
    truth[::7, 1] = np.nan  # some studies not read for every label
    site = site_labels(np.arange(n), groups, truth, LABELS)
    assert len(site.study_ids) == n - len(range(0, n, 7))
    assert not np.isnan(site.truth.astype(float)).any()
    by_patient = {}
    for g, p in zip(site.groups, site.parts):
        by_patient.setdefault(g, set()).add(p)
    assert all(len(parts) == 1 for parts in by_patient.values())
    sizes = {p: len(site.part(p)) / len(site.study_ids) for p in Part}
    assert abs(sizes[Part.TRAIN] - 0.6) < 0.05 and abs(sizes[Part.TEST] - 0.2) < 0.05
    counts = site.counts()
    assert counts["train"]["studies"] + counts["validation"]["studies"] + counts["test"]["studies"] == len(
        site.study_ids
    )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True))
def test_a_patients_part_depends_on_the_patient_alone(keys):
    """The site grows: adding patients never moves one already assigned (the held-out
    part of an earlier round stays held out)."""
    alone = {k: patient_part(k) for k in keys}
    groups = keys + ["another-patient-1", "another-patient-2"]
    site = site_labels(np.arange(len(groups)), groups, np.zeros((len(groups), 3)), LABELS)
    assert {g: Part(p) for g, p in zip(site.groups, site.parts) if g in alone} == alone


def test_the_site_cohort_comes_from_the_reviewed_studies_of_one_model_version(tmp_path):
    from bench.seed import seed
    from core.labels import LABELS as ALL
    from db.bootstrap import open_database
    from db.studies import model_versions
    from services.site_labels import site_cohort
    from tests.conftest import make_settings, shared

    settings = make_settings(tmp_path / "data")
    engine = open_database(settings)
    seed(engine, settings.data_dir, shared("nih", "full", "00000001_000.png"), 300, reviewed_fraction=0.5)
    (version,) = model_versions(engine)
    site = site_cohort(engine, version, ALL)
    assert 120 <= len(site.study_ids) <= 180  # the reviewed half, every label decided
    assert site.truth.shape == (len(site.study_ids), len(ALL))
    assert site_cohort(engine, "no-such-version", ALL).study_ids.size == 0
    engine.dispose()
