"""shadow scores: a shadow model's probabilities for each image analysed while it ran
beside the current model (never shown, never used for triage)

Revision ID: 0011
Revises: 0010
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_scores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("instances.id", ondelete="CASCADE"), nullable=False),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_name", sa.String(120), nullable=False),
        sa.Column("current_version", sa.String(64), nullable=False),
        sa.Column("probabilities", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("instance_id", "model_name", name="uq_shadow_scores"),
    )
    op.create_index("ix_shadow_scores_model", "shadow_scores", ["model_name", "study_id"])


def downgrade() -> None:
    op.drop_index("ix_shadow_scores_model", table_name="shadow_scores")
    op.drop_table("shadow_scores")
