"""Fill a database with many synthetic-score studies quickly (for page/analytics benchmarks).

Scores and verdicts are generated, the images are not: every study points to one real
radiograph copied into the data folder, so Review renders a real image. Rows are written
by the product's own writers (``db.studies.insert_studies``, ``db.results.store_results``,
``db.reviews.record_reviews``) and keyed by the same triage policy the worker uses.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np

from core import storage
from core.config import Settings
from core.labels import LABELS
from core.pixel_transforms import to_uint8
from core.triage import TriagePolicy
from db.results import StudyResult, store_results
from db.reviews import RecordedReview, record_reviews
from db.schema import utcnow
from db.session import run_write
from db.studies import NewStudy, insert_studies
from db.users import create_user

MODEL_VERSION = "bench"


def seed(
    engine,
    data_dir: Path,
    image: Path,
    n: int,
    reviewed_fraction: float = 0.0,
    seed: int = 0,
    chunk: int = 5000,
    triage: TriagePolicy | None = None,
    labels: tuple[str, ...] = LABELS,
) -> None:
    """``n`` analysed studies (a ``reviewed_fraction`` of them reviewed by the "bench" admin)."""
    from core.decode import decode_bytes

    triage = triage or Settings(data_dir, "", data_dir).triage()
    rng = np.random.default_rng(seed)
    data = image.read_bytes()
    sha = storage.sha256_hex(data)
    decoded = decode_bytes(data)
    rel = storage.original_relpath(sha, decoded.metadata["format"])
    storage.store_bytes(data_dir, rel, data)
    storage.store_bytes(data_dir, storage.preview_relpath(sha), storage.png_bytes(to_uint8(decoded.pixels)))
    reviewer = create_user(engine, "bench", secrets.token_urlsafe(16), "admin", actor="bench")
    now = utcnow()
    thresholds = dict(zip(labels, rng.uniform(0.2, 0.6, len(labels)).tolist(), strict=True))
    for start in range(0, n, chunk):
        size = min(n, start + chunk) - start
        truth = rng.random((size, len(labels))) < 0.15
        probs = np.clip(rng.normal(0.35 + 0.25 * truth, 0.18), 0.001, 0.999)
        created = [now - timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 60, size)]
        reviewed = rng.random(size) < reviewed_fraction
        new = [
            NewStudy(
                sha256=f"{start + k + 1:064x}",
                original_name=f"study_{start + k + 1:06d}.png",
                stored_path=rel,
                file_format="png",
                width=decoded.width,
                height=decoded.height,
                created_at=created[k],
                priority=triage.key(0.0, created[k]),
                view_position=["PA", "AP"][k % 2],
                patient_sex=["M", "F"][k % 3 % 2],
                patient_age=int(rng.integers(18, 90)),
            )
            for k in range(size)
        ]

        def work(session, new=new, probs=probs, truth=truth, created=created, reviewed=reviewed) -> None:
            ids = insert_studies(session, new, "bench")
            results, reviews = [], []
            for k, sid in enumerate(ids):
                p = dict(zip(labels, probs[k].tolist(), strict=True))
                flagged = frozenset(lab for lab in labels if p[lab] >= thresholds[lab])
                score = triage.suspicion(p, thresholds)
                results.append(
                    StudyResult(
                        study_id=sid,
                        model_name="bench",
                        model_version=MODEL_VERSION,
                        labels=labels,
                        probabilities=p,
                        spread={lab: 0.01 for lab in labels},
                        thresholds=thresholds,
                        threshold_version="bench",
                        flagged=flagged,
                        tta_views=8,
                        triage_score=score,
                        priority=triage.key(score, created[k]),
                    )
                )
                if reviewed[k]:
                    reviews.append(
                        RecordedReview(
                            sid,
                            reviewer.id,
                            dict(zip(labels, truth[k].tolist(), strict=True)),
                            flagged,
                            labels,
                            MODEL_VERSION,
                        )
                    )
            store_results(session, results, worker_id=None)
            record_reviews(session, reviews, utcnow())

        run_write(engine, work)


@contextmanager
def seeded_database(n: int, reviewed_fraction: float, image: Path, keep: Path | None = None):
    """A data folder and SQLite database holding ``n`` seeded studies; yields (settings,
    engine). Temporary by default; with ``keep``, seeded there once and reused as it is on
    later runs (seeding 100,000 studies takes minutes)."""
    import tempfile
    import time

    from core.config import DEFAULT_MODEL_DIR, sqlite_url
    from db.bootstrap import open_database

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(keep) if keep is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        seeded = keep is not None and (folder / "cxr.sqlite3").is_file()
        settings = Settings(folder, sqlite_url(folder / "cxr.sqlite3"), DEFAULT_MODEL_DIR, embedded_worker=False)
        engine = open_database(settings)
        if not seeded:
            t = time.perf_counter()
            seed(engine, folder, image, n, reviewed_fraction=reviewed_fraction, triage=settings.triage())
            print(
                f"seeded {n} studies (15 predictions each, {reviewed_fraction:.0%} reviewed) "
                f"in {time.perf_counter() - t:.1f}s"
            )
        try:
            yield settings, engine
        finally:
            engine.dispose()
