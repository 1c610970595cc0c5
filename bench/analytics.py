"""The computation behind the Analytics page on 100,000 reviewed studies (15 labels each).

Times: loading the cohort from SQLite, ground truth from verdicts, every finding's ROC/AUC
with bootstrap CI and operating point, and the false-positive tables; first run and
cached run. Baseline in the same run: a per-finding loop of sklearn.metrics.roc_curve /
roc_auc_score with a naive bootstrap (resample indices, recompute the AUC each time).
Run: python -m bench.analytics [--n 100000]
"""

from __future__ import annotations

import argparse
import time

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument(
        "--baseline-labels", type=int, default=2, help="the naive loop is timed on this many findings and scaled to 15"
    )
    args = parser.parse_args()
    shared = require_shared()
    from bench.seed import seeded_database

    with seeded_database(args.n, 1.0, shared / "nih/full/00000001_000.png") as (_, engine):
        from core.cohort import default_boot_count, false_positives, finding_table
        from core.labels import LABELS
        from dashboard.analytics_data import compute
        from db.analytics import CohortFilter, data_stamp, load_cohort

        flt = CohortFilter()
        t0 = time.perf_counter()
        data = load_cohort(engine, flt, LABELS)
        t1 = time.perf_counter()
        cohort = data.cohort("verdicts", "majority")
        t2 = time.perf_counter()
        n_boot = default_boot_count(args.n)
        result = finding_table(cohort, n_boot)
        false_positives(cohort)
        t3 = time.perf_counter()
        stamp = data_stamp(engine)
        compute(engine, stamp, flt, LABELS, "verdicts", "majority", None)
        t5 = time.perf_counter()
        compute(engine, data_stamp(engine), flt, LABELS, "verdicts", "majority", None)
        t6 = time.perf_counter()

        sub = list(LABELS[: args.baseline_labels])
        tb = time.perf_counter()
        naive(cohort, sub, n_boot)
        naive_s = (time.perf_counter() - tb) * 15 / len(sub)
        rows = [
            {
                "step": f"load cohort from SQLite (packed rows: {args.n} scores, {args.n} verdict sets)",
                "seconds": t1 - t0,
            },
            {"step": "ground truth from verdicts (majority rule)", "seconds": t2 - t1},
            {
                "step": f"15 findings: ROC AUC + {n_boot}-resample patient bootstrap CI, Wilson CIs, FP table",
                "seconds": t3 - t2,
            },
            {
                "step": "page computation, first time (all of the above via the page's cached function)",
                "seconds": t5 - t3,
            },
            {"step": "page computation, cached (data unchanged: cache key query + lookup)", "seconds": t6 - t5},
            {
                "step": f"baseline: per-finding sklearn roc_curve + naive {n_boot}-resample bootstrap "
                f"(timed on {len(sub)} findings, x15/{len(sub)})",
                "seconds": naive_s,
            },
        ]
        table(rows, f"Analytics on {args.n} reviewed studies (target < 2 s first time and cached)")
        print(f"\nmean AUC over findings in this synthetic cohort: {result['auc'].mean():.3f}")


if __name__ == "__main__":
    main()
