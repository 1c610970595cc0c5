"""Render time of Worklist and Review with 10,000 studies in the database (AppTest).

Baseline in the same run: the straightforward worklist, ORM objects with one query per
study for its predictions (N+1), sorted in Python.
Run: python -m bench.pages [--n 10000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import ROOT, require_shared, table


def time_page(path: str, user_id: int, repeat: int, state: dict | None = None) -> list[float]:
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(repeat):
        at = AppTest.from_file(str(ROOT / path), default_timeout=60)
        at.session_state["user_id"] = user_id
        for k, v in (state or {}).items():
            at.session_state[k] = v
        t = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t) * 1000)
        assert not at.exception, at.exception
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    shared = require_shared()
    from bench.seed import seeded_database
    from dashboard.state import use_settings
    from db.baselines import naive_worklist

    with seeded_database(args.n, 0.2, shared / "nih/full/00000001_000.png") as (settings, engine):
        use_settings(settings)  # the pages run in this process, on the seeded database
        rows = []
        for name, path, state in (
            ("Worklist", "pages/worklist.py", None),
            ("Review", "pages/review.py", {"study_id": args.n // 2}),
        ):
            times = time_page(path, 1, args.repeat, state)
            rows.append(
                {
                    "page": name,
                    "median_ms": statistics.median(times[1:] or times),
                    "first_run_ms": times[0],
                    "max_ms": max(times),
                }
            )
        t = time.perf_counter()
        naive_worklist(engine)
        rows.append(
            {
                "page": "baseline: naive worklist query (ORM, N+1)",
                "median_ms": (time.perf_counter() - t) * 1000,
                "first_run_ms": float("nan"),
                "max_ms": float("nan"),
            }
        )
        table(rows, f"AppTest render time with {args.n} studies (target < 1000 ms each)")


if __name__ == "__main__":
    main()
