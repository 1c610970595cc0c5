"""Worker faults, measured: ``python -m bench.worker_faults``.

1. Poison in a batch: 50 real radiographs are queued; 5 are poison (2 stored files
   damaged on disk, 2 whose model output is non-finite, 1 whose heatmaps meet a full
   disk); one worker runs the queue without any restart. Expected: 45 done, the 5 failed
   or requeued with a reason. Baseline in the same run: the same queue with the result
   checks and storage guards switched off (the first wave's worker), whose loop dies.
2. Slow batches under short leases: lease 2 s, every batch takes 10 s; two workers take
   the 16 studies, a third arrives 3 s later. Counted: how many times each study was
   analysed. Expected: once each.
   Baseline in the same run: the same workers without lease renewal.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.common import require_shared, table


class CountingAnalyzer:
    """The real engine, counting how often each image was analysed, optionally slow."""

    def __init__(self, real, delay_s: float = 0.0) -> None:
        self.real, self.delay_s = real, delay_s
        self.card, self.labels, self.device, self.views = real.card, real.labels, real.device, real.views
        self.calls: Counter = Counter()
        self._lock = threading.Lock()

    def analyse(self, images, thresholds=None):
        with self._lock:
            for img in images:
                self.calls[hash(img.tobytes())] += 1
        time.sleep(self.delay_s)
        return self.real.analyse(images, thresholds)


def _fresh(tmp: str, lease_seconds: float):
    from bench.common import bench_settings
    from db.bootstrap import open_database

    settings = bench_settings(tmp, lease_seconds=lease_seconds, batch_size=8, tta_views=("identity",))
    return settings, open_database(settings)


def _queue(engine, settings, files: list[Path]) -> list[int]:
    from services.ingest import ingest_upload

    return [ingest_upload(engine, settings, f.name, f.read_bytes())[0].study_id for f in files]


def _statuses(engine) -> Counter:
    from db.queue import queue_counts

    return Counter({status: n for status, n in queue_counts(engine).items() if n})


class PoisonAnalyzer(CountingAnalyzer):
    """Returns non-finite probabilities for the images in ``poison`` (as a NaN pixel,
    RescaleSlope NaN or a corrupt model would)."""

    def __init__(self, real, poison: set[int]) -> None:
        super().__init__(real)
        self.poison = poison

    def analyse(self, images, thresholds=None):
        from dataclasses import replace

        out = self.real.analyse(images, thresholds)
        return [
            replace(a, probabilities={k: float("nan") for k in a.probabilities})
            if hash(img.tobytes()) in self.poison
            else a
            for img, a in zip(images, out, strict=True)
        ]


def poison_run(real, files: list[Path], guarded: bool) -> dict:
    """5 poison studies among 50: 2 stored files damaged on disk, 2 with non-finite model
    output, 1 whose heatmaps hit a full disk. ``guarded=False`` is the first wave's
    worker: result checks off and storage errors propagate out of the loop."""
    import errno

    import services.worker as worker_module
    from core import storage
    from core.decode import decode_bytes
    from db.studies import stored_paths
    from services.worker import Worker

    saved = worker_module.invalid_result, storage.atomic_write
    with tempfile.TemporaryDirectory() as tmp:
        settings, engine = _fresh(tmp, 120)
        ids = _queue(engine, settings, files)
        damaged, nan_ids, full_disk = ids[3:5], ids[13:15], ids[23]
        rels = stored_paths(engine, damaged)
        for rel in rels.values():
            path = storage.safe_join(settings.data_dir, rel)
            path.write_bytes(path.read_bytes()[:300])
        poison = {hash(decode_bytes(files[ids.index(i)].read_bytes()).pixels.tobytes()) for i in nan_ids}

        def full(path, data, _real=storage.atomic_write):
            if f"/heatmaps/{full_disk}/" in str(path):
                raise OSError(errno.ENOSPC, "No space left on device")
            return _real(path, data)

        storage.atomic_write = full
        if not guarded:
            worker_module.invalid_result = lambda analysis: None
        worker = Worker(settings, engine, PoisonAnalyzer(real, poison), worker_id="bench")
        if not guarded:
            real_fail = worker._fail

            def unguarded(study_id, reason, report, permanent=False):
                if reason.startswith("Results could not be stored"):
                    raise RuntimeError(reason)  # the first wave had no guard around storing
                real_fail(study_id, reason, report, permanent)

            worker._fail = unguarded
        t = time.perf_counter()
        stopped = None
        try:
            while worker.run_once().claimed:
                pass
        except Exception as exc:  # noqa: BLE001 - the baseline's loop dies here
            stopped = type(exc).__name__
        finally:
            worker_module.invalid_result, storage.atomic_write = saved
        seconds = time.perf_counter() - t
        counts = _statuses(engine)
        engine.dispose()
    return {
        "worker": "guarded (now)" if guarded else "unguarded (baseline)",
        "done": counts["done"],
        "failed": counts["failed"],
        "requeued": counts["queued"],
        "stuck processing": counts["processing"],
        "loop stopped by": stopped or "-",
        "seconds": round(seconds, 1),
    }


def lease_run(real, files: list[Path], renew: bool) -> dict:
    import services.worker as worker_module
    from services.worker import Worker

    analyzer = CountingAnalyzer(real, delay_s=10.0)
    original = worker_module.LeaseKeeper
    if not renew:

        class NoRenewal(original):
            def _run(self) -> None:
                self._stop.wait()

        worker_module.LeaseKeeper = NoRenewal
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings, engine = _fresh(tmp, 2.0)
            _queue(engine, settings, files)
            workers = [Worker(settings, engine, analyzer, worker_id=f"w{i}") for i in range(3)]

            def drain(w):
                if w.worker_id == "w2":  # arrives once the first two batches' leases would have expired
                    time.sleep(3.0)
                idle = 0
                while idle < 3:
                    idle = idle + 1 if w.run_once().claimed == 0 else 0
                    time.sleep(0.5)

            lost = [0]
            real_run_once = Worker.run_once

            def counting_run_once(self):
                report = real_run_once(self)
                lost[0] += report.lost
                return report

            for w in workers:
                w.run_once = counting_run_once.__get__(w)
            threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            seconds = time.perf_counter() - t
            counts = _statuses(engine)
            engine.dispose()
    finally:
        worker_module.LeaseKeeper = original
    calls = analyzer.calls
    return {
        "leases": "renewed (now)" if renew else "not renewed (baseline)",
        "studies": len(files),
        "analysed once": sum(1 for c in calls.values() if c == 1),
        "analysed twice or more": sum(1 for c in calls.values() if c > 1),
        "analyses in all": sum(calls.values()),
        "results discarded (lease lost)": lost[0],
        "done": counts["done"],
        "failed": counts["failed"],
        "seconds": round(seconds, 1),
    }


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # the baseline's expected tracebacks are counted, not printed
    from core.config import DEFAULT_MODEL_DIR
    from core.inference import Analyzer

    shared = require_shared()
    files = sorted((shared / "nih" / "dev512").glob("*.png"))[:50]
    real = Analyzer(DEFAULT_MODEL_DIR, views=["identity"])
    table(
        [poison_run(real, files, guarded=True), poison_run(real, files, guarded=False)],
        "50 real studies, 5 poison, one worker, no restart",
    )
    slow = files[:16]
    table(
        [lease_run(real, slow, renew=True), lease_run(real, slow, renew=False)],
        "lease 2 s, each batch 10 s, three workers (one arriving at 3 s), 16 studies",
    )


if __name__ == "__main__":
    main()
