"""The closed loop on a simulated site, end to end, with the figures a site would read:
every image of the default model's validation and test patients (``nih/dev512`` and
``nih/small64``; none of them fitted the model's weights) is ingested, analysed by the
worker (features kept), labelled with its NIH reference labels (the site's "reads"), and
the head is retrained; the script prints the before and after figures on the site's
held-out patients and on the project's own NIH test images, with their 95% CIs, and what
the promotion gate decided. The current model is the baseline, scored in the same run.

Run: python -m bench.site_loop [--views identity]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from bench.common import bench_settings, require_shared, table

ROOT = Path(__file__).resolve().parents[1]


def site_images(shared: Path) -> list[Path]:
    model = ROOT / "models" / "default"
    with open(model / "training_images.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] in ("val", "test")]
    return [shared / "nih" / r["source"] / r["Image Index"] for r in rows]


def _rows(comparison: dict | None, cohort: str) -> list[dict]:
    if not comparison:
        return [{"cohort": cohort, "measure": "(no comparison possible)"}]
    out = []
    mean = comparison.get("mean_auc_findings")
    if mean:
        out.append(_row(cohort, "mean AUC, findings", mean["mean_a"], mean["mean_b"], mean))
    abnormal = comparison.get("abnormal_vs_normal")
    if abnormal:
        out.append(_row(cohort, "abnormal vs normal AUC", abnormal["auc_a"], abnormal["auc_b"], abnormal))
    flags = comparison.get("flags_per_study", {})
    out.append(
        {
            "cohort": cohort,
            "measure": "flags per study",
            "current": flags.get("current"),
            "candidate": flags.get("candidate"),
        }
    )
    ece = comparison.get("calibration_error", {})
    out.append(
        {
            "cohort": cohort,
            "measure": "calibration error",
            "current": ece.get("current"),
            "candidate": ece.get("candidate"),
        }
    )
    return out


def _row(cohort: str, measure: str, before: float, after: float, diff: dict) -> dict:
    return {
        "cohort": cohort,
        "measure": measure,
        "current": round(before, 3),
        "candidate": round(after, 3),
        "difference (95% CI)": f"{diff['difference']:+.3f} ({diff['ci_low']:+.3f} to {diff['ci_high']:+.3f})",
        "p": round(diff["p_value"], 4) if "p_value" in diff else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", default="identity", help="TTA views of the worker (comma-separated)")
    args = parser.parse_args(argv)
    shared = require_shared()
    from core.inference import Analyzer
    from db.bootstrap import open_database
    from db.queue import queue_counts
    from services.ingest import ingest_upload
    from services.reference_labels import import_labels
    from services.retraining import retrain
    from services.worker import Worker

    images = site_images(shared)
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp) / "data", tta_views=tuple(args.views.split(",")))
        engine = open_database(settings)
        start = time.perf_counter()
        for path in images:
            ingest_upload(engine, settings, path.name, path.read_bytes())
        worker = Worker(settings, engine, Analyzer(settings.model_dir, views=list(settings.tta_views)), "site-loop")
        worker.announce_model()
        while queue_counts(engine)["queued"]:
            worker.run_once()
        import_labels(engine, shared / "nih" / "labels" / "Data_Entry_2017_v2020.csv.gz", actor="bench")
        analysed = time.perf_counter() - start
        start = time.perf_counter()
        result = retrain(engine, settings, Path(tmp) / "candidate", actor="bench")
        seconds = time.perf_counter() - start
        info = result.card.training["site_retraining"]
        evaluation = result.card.evaluation
        print(f"site: {len(images)} images, analysed in {analysed:.0f} s; retraining {seconds:.1f} s")
        print("site parts:", {part: counts["studies"] for part, counts in info["cohort_counts"].items()})
        for fit in info["labels"]:
            print(f"  {fit['label']:<20}{fit['action']:<6} {fit['reason']}")
        rows = _rows(evaluation["site_comparison"], "site held-out patients")
        rows += _rows(evaluation["reference_comparison"], "project NIH test images")
        keys = ("cohort", "measure", "current", "candidate", "difference (95% CI)", "p")
        rows = [{k: r.get(k, "") for k in keys} for r in rows]
        table(rows, "Before (current) and after (candidate), paired on the same studies")
        gate = result.gate
        print("gate:", "passes" if gate.passed else "refuses: " + "; ".join(gate.reasons))
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
