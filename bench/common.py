"""Helpers shared by the benchmarks: timing, the real data folder, a table printer."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def require_shared() -> Path:
    if not SHARED.exists():
        sys.exit(f"real data not available: {SHARED} is absent")
    return SHARED


def median_ms(fn: Callable[[], object], repeat: int = 15, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def table(rows: list[dict], title: str) -> None:
    print(f"\n## {title}")
    if not rows:
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(_fmt(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(_fmt(r[k]).ljust(widths[k]) for k in keys))


def _fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def bench_settings(data_dir, **overrides):
    """Settings for a benchmark's temporary data folder (SQLite, default model, no embedded
    worker), built directly rather than through the environment."""
    from core.config import DEFAULT_MODEL_DIR, Settings, sqlite_url

    data_dir = Path(data_dir).resolve()
    overrides.setdefault("embedded_worker", False)
    return Settings(data_dir, sqlite_url(data_dir / "cxr.sqlite3"), DEFAULT_MODEL_DIR, **overrides)
