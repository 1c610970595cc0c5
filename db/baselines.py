"""The straightforward queries the benchmarks measure the product's against (kept here
because every SQL statement lives in ``db``); nothing in the product calls them."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.schema import Prediction, Study


def naive_worklist(engine: Engine) -> list[tuple[float, int]]:
    """ORM objects, one query per study for its predictions (N+1), sorted in Python."""
    with Session(engine) as session:
        studies = session.execute(select(Study).where(Study.status == "done")).scalars().all()
        scored = []
        for study in studies:
            preds = session.execute(select(Prediction).where(Prediction.study_id == study.id)).scalars().all()
            scored.append((sum(p.probability - p.threshold for p in preds if p.flagged), study.id))
        return sorted(scored, reverse=True)[:200]
