"""Fill a database with many synthetic-score studies quickly (for page/analytics benchmarks).

Scores and verdicts are generated, the images are not: every study points to one real
radiograph copied into the data folder, so Review renders a real image.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from core import storage
from core.labels import LABELS
from core.pixel_transforms import to_uint8
from core.triage import priority_key, suspicion, waiting_rate
from db.schema import Prediction, Study, StudyScores, User, Verdict, VerdictSet, utcnow


def seed(engine, data_dir: Path, image: Path, n: int, reviewed_fraction: float = 0.0, seed: int = 0,
         chunk: int = 5000, overdue_hours: float = 24.0) -> None:
    """Studies scored and keyed by the same functions the worker uses (core.triage)."""
    from core.decode import decode_bytes

    rng = np.random.default_rng(seed)
    data = image.read_bytes()
    sha = storage.sha256_hex(data)
    decoded = decode_bytes(data)
    rel = storage.original_relpath(sha, decoded.metadata["format"])
    storage.store_bytes(data_dir, rel, data)
    storage.store_bytes(data_dir, storage.preview_relpath(sha), storage.png_bytes(to_uint8(decoded.pixels)))
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(User), [{"id": 1, "username": "bench", "password_hash": None, "role": "admin",
                                     "active": True, "created_at": now}])
    thresholds = rng.uniform(0.2, 0.6, len(LABELS))
    threshold_map = dict(zip(LABELS, thresholds.tolist(), strict=True))
    rate = waiting_rate(overdue_hours, LABELS)
    for start in range(0, n, chunk):
        ids = range(start + 1, min(n, start + chunk) + 1)
        truth = rng.random((len(ids), len(LABELS))) < 0.15
        probs = np.clip(rng.normal(0.35 + 0.25 * truth, 0.18), 0.001, 0.999)
        studies, preds, verdicts, scores, sets = [], [], [], [], []
        for k, sid in enumerate(ids):
            created = now - timedelta(minutes=int(rng.integers(0, 60 * 24 * 60)))
            flagged = probs[k] >= thresholds
            score = suspicion(dict(zip(LABELS, probs[k].tolist(), strict=True)), threshold_map)
            studies.append({"id": sid, "sha256": f"{sid:064x}", "original_name": f"study_{sid:06d}.png",
                            "stored_path": rel, "file_format": "png", "width": decoded.width,
                            "height": decoded.height, "status": "done", "priority": priority_key(score, created, rate),
                            "triage_score": score, "attempts": 1,
                            "created_at": created, "updated_at": created, "processed_at": created,
                            "model_version": "bench", "view_position": ["PA", "AP"][sid % 2],
                            "patient_sex": ["M", "F"][sid % 3 % 2], "patient_age": int(rng.integers(18, 90)),
                            "patient_key": f"p{sid // 3}"})
            scores.append({"study_id": sid, "model_version": "bench", "probabilities": probs[k].astype("<f4").tobytes(),
                           "thresholds": thresholds.astype("<f4").tobytes()})
            reviewed = rng.random() < reviewed_fraction
            if reviewed:
                sets.append({"study_id": sid, "reviewer_id": 1, "updated_at": created,
                             "present_mask": int(sum(1 << j for j in range(len(LABELS)) if truth[k, j]))})
            for j, label in enumerate(LABELS):
                preds.append({"study_id": sid, "label": label, "probability": float(probs[k, j]), "spread": 0.01,
                              "threshold": float(thresholds[j]), "flagged": bool(flagged[j]), "model_name": "bench",
                              "model_version": "bench", "threshold_version": "bench", "tta_views": 8,
                              "created_at": created})
                if reviewed:
                    present = bool(truth[k, j])
                    verdict = ("correct" if present else "incorrect") if flagged[j] else ("missed" if present else "correct")
                    verdicts.append({"study_id": sid, "label": label, "reviewer_id": 1, "flagged": bool(flagged[j]),
                                     "verdict": verdict, "present": present, "model_version": "bench",
                                     "created_at": created, "updated_at": created})
        with engine.begin() as conn:
            conn.execute(insert(Study), studies)
            conn.execute(insert(Prediction), preds)
            conn.execute(insert(StudyScores), scores)
            if verdicts:
                conn.execute(insert(Verdict), verdicts)
                conn.execute(insert(VerdictSet), sets)


@contextmanager
def seeded_database(n: int, reviewed_fraction: float, image: Path):
    """A temporary data folder and SQLite database holding ``n`` seeded studies."""
    import os
    import tempfile
    import time

    from core.config import load_settings
    from db.bootstrap import open_database

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(CXR_DATA_DIR=tmp, CXR_EMBEDDED_WORKER="0")
        os.environ.pop("CXR_DATABASE_URL", None)
        engine = open_database(load_settings())
        t = time.perf_counter()
        seed(engine, Path(tmp), image, n, reviewed_fraction=reviewed_fraction)
        print(f"seeded {n} studies (15 predictions each, {reviewed_fraction:.0%} reviewed) "
              f"in {time.perf_counter() - t:.1f}s")
        try:
            yield engine
        finally:
            engine.dispose()
