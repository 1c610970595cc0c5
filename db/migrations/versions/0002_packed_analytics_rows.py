"""packed per-study scores and verdict masks for fast cohort analytics

Revision ID: 0002
Revises: 0001
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels = None
depends_on = None

LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
    "No Finding",
)


def upgrade() -> None:
    op.create_table(
        "study_scores",
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_version", sa.String(length=64), primary_key=True),
        sa.Column("probabilities", sa.LargeBinary(), nullable=False),
        sa.Column("thresholds", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "verdict_sets",
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("reviewer_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("present_mask", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    _backfill()


def _backfill() -> None:
    """Pack rows that already exist (databases created before this revision)."""
    import numpy as np

    bind = op.get_bind()
    index = {lab: j for j, lab in enumerate(LABELS)}
    scores: dict = {}
    for sid, version, label, p, t in bind.execute(
        sa.text("SELECT study_id, model_version, label, probability, threshold FROM predictions")
    ):
        entry = scores.setdefault((sid, version), (np.zeros(15, np.float32), np.zeros(15, np.float32)))
        entry[0][index[label]], entry[1][index[label]] = p, t
    if scores:
        bind.execute(
            sa.text(
                "INSERT INTO study_scores (study_id, model_version, probabilities, thresholds) VALUES (:s, :v, :p, :t)"
            ),
            [{"s": s, "v": v, "p": p.tobytes(), "t": t.tobytes()} for (s, v), (p, t) in scores.items()],
        )
    masks: dict = {}
    for sid, rid, label, present, at in bind.execute(
        sa.text("SELECT study_id, reviewer_id, label, present, updated_at FROM verdicts")
    ):
        mask, last = masks.get((sid, rid), (0, at))
        masks[(sid, rid)] = (mask | (1 << index[label]) if present else mask, max(last, at))
    if masks:
        bind.execute(
            sa.text(
                "INSERT INTO verdict_sets (study_id, reviewer_id, present_mask, updated_at) VALUES (:s, :r, :m, :u)"
            ),
            [{"s": s, "r": r, "m": m, "u": u} for (s, r), (m, u) in masks.items()],
        )


def downgrade() -> None:
    op.drop_table("verdict_sets")
    op.drop_table("study_scores")
