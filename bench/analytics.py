"""The computation behind the Analytics page on 100,000 reviewed studies (15 labels each).

Times the page's steps one by one (cache key, loading the cohort from SQLite, ground truth
from verdicts, every finding's AUC with bootstrap CI and operating point, the first
finding's ROC with its band), then the page's computation as the page runs it, first time
and cached, and the False positives tab's first opening.
Baseline in the same run: a per-finding loop of sklearn.metrics.roc_curve / roc_auc_score
with a naive bootstrap (resample indices, recompute the AUC each time).
Run: python -m bench.analytics [--n 100000] [--keep DIR]
(--keep seeds DIR once and measures the database already there on later runs.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import require_shared, table


def naive(cohort, labels: list[str], n_boot: int, seed: int = 0) -> None:
    """The straightforward way: sklearn per finding, a Python loop of resamples."""
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(seed)
    for label in labels:
        y, s, _, _ = cohort.label(label)
        roc_curve(y, s)
        roc_auc_score(y, s)
        boots = []
        for _ in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            boots.append(roc_auc_score(y[idx], s[idx]))
        np.quantile(boots, [0.025, 0.975])


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(engine) -> list[dict]:
    """The page's own steps, in its order, timed one by one, then the page's computation
    as the page calls it: first time (empty caches) and again with the data unchanged."""
    from core.cohort import (
        default_boot_count,
        false_positive_studies,
        false_positives,
        finding_roc_band,
        finding_table,
        resampling,
    )
    from core.labels import LABELS
    from core.metrics import pr_points, roc_points
    from dashboard.analytics_data import Selection, compute, false_positive_tables, roc_curves
    from db.analytics import CohortFilter, data_stamp, load_cohort, study_details
    from services.analytics import with_truth

    flt = CohortFilter()
    stamp, t_stamp = _timed(lambda: data_stamp(engine))
    data, t_load = _timed(lambda: load_cohort(engine, flt, LABELS, with_reference=False))
    cohort, t_truth = _timed(lambda: with_truth(data, "verdicts", "majority"))
    n_boot = default_boot_count(len(cohort.study_ids))
    shared, t_draw = _timed(lambda: resampling(cohort, n_boot))
    table_, t_table = _timed(lambda: finding_table(cohort, shared=shared))
    finding = str(table_["finding"].iloc[0])

    def curves():
        y, s, _, _ = cohort.label(finding)
        roc_points(y, s), finding_roc_band(cohort, finding, shared), pr_points(y, s)

    _, t_roc = _timed(curves)
    _, t_fp = _timed(
        lambda: false_positive_studies(cohort, false_positives(cohort), study_details(engine, cohort.study_ids))
    )

    def page() -> None:
        selection = Selection(data_stamp(engine), flt, LABELS, "verdicts", "majority", None)
        compute(engine, selection)
        roc_curves(engine, selection, finding)

    _, t_first = _timed(page)
    _, t_cached = _timed(page)
    selection = Selection(data_stamp(engine), flt, LABELS, "verdicts", "majority", None)
    _, t_fp_tab = _timed(lambda: false_positive_tables(engine, selection))
    return [
        {"step": "cache key (data stamp: counts and latest times, from indexes)", "seconds": t_stamp},
        {"step": f"load cohort ({len(cohort.study_ids)} studies' packed scores and verdict sets)", "seconds": t_load},
        {"step": "ground truth from verdicts (majority rule)", "seconds": t_truth},
        {"step": f"{n_boot} bootstrap resamples of patients (shared by every interval and band)", "seconds": t_draw},
        {"step": "15 findings: AUC with its bootstrap CI, operating point, Wilson CIs", "seconds": t_table},
        {"step": f"{finding}: ROC, its bootstrap band, precision-recall", "seconds": t_roc},
        {"step": "page, first load (all of the above through the page's caches)", "seconds": t_first},
        {"step": "page, again with the data unchanged (cache key + lookups)", "seconds": t_cached},
        {"step": "False positives tab, first opened (false positives + their studies)", "seconds": t_fp_tab},
        {"step": "(false positives + their studies' details, computed directly)", "seconds": t_fp},
        {"cohort": cohort},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument(
        "--baseline-labels", type=int, default=2, help="the naive loop is timed on this many findings and scaled to 15"
    )
    parser.add_argument("--keep", type=Path, default=None, help="a data folder to seed once and reuse")
    args = parser.parse_args()
    shared = require_shared()
    from bench.seed import seeded_database
    from core.cohort import default_boot_count
    from core.labels import LABELS

    with seeded_database(args.n, 1.0, shared / "nih/full/00000001_000.png", keep=args.keep) as (_, engine):
        rows = measure(engine)
        cohort = rows.pop()["cohort"]
        n_boot = default_boot_count(len(cohort.study_ids))
        sub = list(LABELS[: args.baseline_labels])
        tb = time.perf_counter()
        naive(cohort, sub, n_boot)
        naive_s = (time.perf_counter() - tb) * 15 / len(sub)
        rows.append(
            {
                "step": f"baseline: per-finding sklearn roc_curve + naive {n_boot}-resample bootstrap "
                f"(timed on {len(sub)} findings, x15/{len(sub)})",
                "seconds": naive_s,
            }
        )
        table(rows, f"Analytics on {args.n} reviewed studies (targets: first load < 2 s, cached < 0.3 s)")


if __name__ == "__main__":
    main()
