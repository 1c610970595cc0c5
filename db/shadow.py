"""Shadow scores: rows written beside a study's results while a candidate runs in shadow,
read back only for the prospective comparison. No screen that readers use selects them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, delete, distinct, func, insert, select
from sqlalchemy.orm import Session

from db.schema import ShadowScore
from db.session import run_write


@dataclass(frozen=True)
class ShadowRows:
    instance_ids: np.ndarray  # (N,)
    study_ids: np.ndarray  # (N,)
    probabilities: np.ndarray  # (N, L) float32, the shadow model's label order


def store(
    engine: Engine, model_name: str, current_version: str, study_id: int, rows: Sequence[tuple[int, np.ndarray]]
) -> None:
    """Replace the shadow model's scores of one study's images with ``rows`` (instance id,
    probabilities): a study analysed again gets its newest scores."""

    def work(session: Session) -> None:
        session.execute(
            delete(ShadowScore).where(ShadowScore.study_id == int(study_id), ShadowScore.model_name == model_name)
        )
        if rows:
            session.execute(
                insert(ShadowScore),
                [
                    {
                        "instance_id": int(instance_id),
                        "study_id": int(study_id),
                        "model_name": model_name,
                        "current_version": current_version,
                        "probabilities": np.asarray(probs, dtype="<f4").tobytes(),
                    }
                    for instance_id, probs in rows
                ],
            )

    run_write(engine, work)


def scores(engine: Engine, model_name: str) -> ShadowRows:
    query = (
        select(ShadowScore.instance_id, ShadowScore.study_id, ShadowScore.probabilities)
        .where(ShadowScore.model_name == model_name)
        .order_by(ShadowScore.instance_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return ShadowRows(np.zeros(0, int), np.zeros(0, int), np.zeros((0, 0), np.float32))
    return ShadowRows(
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.stack([np.frombuffer(r[2], dtype="<f4") for r in rows]),
    )


def count(engine: Engine, model_name: str) -> int:
    """Studies the shadow model has scored."""
    query = select(func.count(distinct(ShadowScore.study_id))).where(ShadowScore.model_name == model_name)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
