"""Analytics page on real data: the per-finding AUC shown equals what training.evaluate prints."""

import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core.labels import LABELS
from db.schema import AuditEvent, ThresholdSet
from tests.conftest import DEFAULT_MODEL, NIH_LABELS, ROOT, SHARED, app_settings

pytestmark = [
    pytest.mark.slow,  # analyses ~200 real studies with the default model
    pytest.mark.skipif(not (SHARED / "nih" / "small64").exists(), reason="real data not available: ../shared/data/nih"),
    pytest.mark.skipif(not (DEFAULT_MODEL / "test_images.txt").exists(), reason="default model not trained"),
]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, analyzer):
    from services.reference_labels import import_labels
    from tests.populated import populate

    names = (DEFAULT_MODEL / "test_images.txt").read_text().split()
    folders = [SHARED / "nih" / "dev512", SHARED / "nih" / "small64"]
    files = [next(f / n for f in folders if (f / n).exists()) for n in names]
    ctx = populate(tmp_path_factory.mktemp("analytics") / "data", analyzer, files)
    ctx["import"] = import_labels(ctx["engine"], NIH_LABELS, actor="alice")
    with app_settings(ctx["settings"]):
        yield ctx
    ctx["engine"].dispose()


def test_reference_import_matches_every_study(analysed):
    assert analysed["import"].matched_studies == len(analysed["ids"])


def test_page_auc_equals_core_evaluate(analysed):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "evaluate",
            "--images",
            str(SHARED / "nih" / "dev512"),
            str(SHARED / "nih" / "small64"),
            "--labels",
            str(NIH_LABELS),
            "--only",
            str(DEFAULT_MODEL / "test_images.txt"),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = json.loads(proc.stdout)["per_label"]
    at = AppTest.from_file(str(ROOT / "pages/analytics.py"), default_timeout=120)
    at.session_state["user_id"] = analysed["admin"].id
    at.run()
    at.radio(key="an_source").set_value("reference").run()
    assert not at.exception
    table = at.dataframe[0].value  # the metrics table, first on the page
    shown = dict(zip(table["finding"], table["AUC (95% CI)"]))
    compared = 0
    for label in LABELS:
        if expected[label]["auc"] is None:
            assert shown.get(label, "n/a") == "n/a"
            continue
        page_auc = float(shown[label].split()[0])  # shown to 3 decimals; evaluate prints 4
        assert page_auc == pytest.approx(expected[label]["auc"], abs=6e-4), (label, shown[label], expected[label])
        compared += 1
    assert compared >= 10
    plots = [c for c in at.get("plotly_chart")]
    assert plots, "the ROC curve is drawn"


def test_admin_saves_threshold_set_and_it_is_audited(analysed):
    at = AppTest.from_file(str(ROOT / "pages/analytics.py"), default_timeout=120)
    at.session_state["user_id"] = analysed["admin"].id
    at.session_state["an_tab"] = "Operating points"
    at.run()
    at.radio(key="an_source").set_value("reference").run()
    at.button(key="op_save").click().run()
    assert not at.exception
    engine = analysed["engine"]
    with engine.connect() as conn:
        sets = conn.execute(select(ThresholdSet.version, ThresholdSet.active, ThresholdSet.thresholds)).all()
        events = conn.execute(select(func.count()).where(AuditEvent.action == "thresholds_changed")).scalar_one()
    assert len(sets) == 1 and sets[0].active and set(sets[0].thresholds) == set(LABELS)
    assert events == 1


def test_reviewer_cannot_save_thresholds_or_export(analysed):
    at = AppTest.from_file(str(ROOT / "pages/analytics.py"), default_timeout=120)
    at.session_state["user_id"] = analysed["reviewer"].id
    at.session_state["an_tab"] = "Operating points"
    at.run()
    at.radio(key="an_source").set_value("reference").run()
    assert "op_save" not in {b.key for b in at.button}
    at.session_state["an_tab"] = "Export"
    at.run()
    assert not at.get("download_button")
